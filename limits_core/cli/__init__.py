"""The ``limits-core`` command line (also ``python -m limits_core``).

Each subcommand lives in its own module of this package and registers itself with
:func:`main`'s parser through a ``register(subparsers)`` function; its ``run(args)`` returns
the exit code.

Exit codes: 0 success; 1 a check failed (``verify``) or the store failed; 2 a usage or
configuration error (a bad option, an unknown backend URL, a missing extra); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from limits_core.errors import ConfigurationError, LimitsCoreError

__all__ = ["main"]

#: Modules of this package that each add one subcommand.
_SUBCOMMANDS = ("demo", "bench", "simulate", "verify", "db")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="limits-core",
        description="Rate limiting that is correct under concurrency: run, compare, verify.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMANDS:
        importlib.import_module(f"limits_core.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error argparse has already printed (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except ConfigurationError as exc:
        print(f"limits-core {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except LimitsCoreError as exc:
        print(f"limits-core {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
