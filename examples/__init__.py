"""Runnable example applications; each module's docstring gives its one command."""
