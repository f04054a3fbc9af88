"""Options shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from algorithms import ALGORITHMS
from limits_core.algorithm import Algorithm
from limits_core.rate import Rate

__all__ = ["add_algorithm_option", "selected_algorithms"]


def add_algorithm_option(parser: argparse.ArgumentParser) -> None:
    """``--algorithm NAME``, repeatable; every registered algorithm when absent."""
    parser.add_argument(
        "--algorithm",
        action="append",
        choices=list(ALGORITHMS),
        metavar="NAME",
        help=f"an algorithm, repeatable: {', '.join(ALGORITHMS)} (default: all)",
    )


def selected_algorithms(args: argparse.Namespace) -> dict[str, Callable[[Rate | str], Algorithm]]:
    """The chosen algorithms' constructors by name, in the registry's order."""
    chosen = args.algorithm or list(ALGORITHMS)
    return {name: build for name, build in ALGORITHMS.items() if name in chosen}
