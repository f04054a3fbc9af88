"""Stores that make the algorithms atomic: ``backends.memory``, ``backends.redis``,
``backends.postgres``.

Importing this package imports no driver; each backend imports its driver when used.
"""
