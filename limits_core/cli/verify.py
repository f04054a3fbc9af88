"""``limits-core verify``: check a live store against the algorithms' reference models."""

from __future__ import annotations

import argparse
import random
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from limits_core.cli._common import add_algorithm_option, selected_algorithms
from limits_core.errors import ConfigurationError
from limits_core.urls import async_backend_from_url, backend_from_url, mask_url
from limits_core.verification import HAMMER_RATE, PROGRAM_RATE, AlgorithmReport, verify


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check that a live store decides exactly as the algorithms' models do",
        description=(
            "For each algorithm, under a random key prefix deleted afterwards: runs seeded "
            "random programs of hits, peeks, resets and clock steps through the sync and async "
            "limiters and compares every decision with the pure model; hammers one key from "
            "threads and from asyncio tasks (exactly the limit must pass); lists keys left "
            "without an expiry. Exit code 1 if anything fails."
        ),
    )
    parser.add_argument(
        "--backend",
        default="memory",
        metavar="URL",
        help="memory, redis://..., postgresql://... (default: memory)",
    )
    add_algorithm_option(parser)
    parser.add_argument(
        "--examples",
        type=int,
        default=50,
        metavar="N",
        help="random programs per algorithm and facade (default: 50)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="replay the programs of an earlier run (default: random)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    url = args.backend
    if args.examples < 1:
        raise ConfigurationError(f"--examples must be at least 1, got {args.examples}")
    backend_from_url(url, prefix="limits-core-verify:").close()  # a bad URL fails here, early
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    algorithms = selected_algorithms(args)
    console.print(f"verifying {mask_url(url)} with seed {seed} (replay with --seed {seed})")
    steps = len(algorithms) * (2 * args.examples + 2)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("verifying", total=steps)
        reports = verify(
            algorithms,
            lambda prefix: backend_from_url(url, prefix=prefix),
            lambda prefix: async_backend_from_url(url, prefix=prefix),
            examples=args.examples,
            seed=seed,
            on_step=lambda what: progress.update(task, advance=1, description=what),
        )
    console.print(_table(reports))
    for report in reports:
        for line in [*map(str, report.disagreements[:3]), *report.errors]:
            console.print(f"[red]{report.name}[/red]: {line}", highlight=False)
    failed = [r.name for r in reports if not r.passed]
    if failed:
        console.print(f"[bold red]FAILED[/bold red]: {', '.join(failed)} (seed {seed})")
        return 1
    passed = f"all {len(reports)} algorithms" if len(reports) != 1 else reports[0].name
    console.print(f"[bold green]{passed} passed[/bold green]")
    return 0


def _table(reports: list[AlgorithmReport]) -> Table:
    table = Table(title="limits-core verify", title_justify="left", show_lines=True)
    table.caption = f"programs at {PROGRAM_RATE}; hammers at {HAMMER_RATE}, the clock frozen"
    table.add_column("algorithm")
    table.add_column("result")
    table.add_column("evidence")
    for r in reports:
        result = "[green]PASS[/green]" if r.passed else "[bold red]FAIL[/bold red]"
        if r.keys_without_expiry is None:
            ttl = "not checked (the store cannot tell)"
        else:
            ttl = ", ".join(r.keys_without_expiry[:5]) or "none"
        lines = [
            f"model agreement: {r.programs} programs, {r.decisions} decisions, "
            f"{len(r.disagreements)} disagreeing",
            *(f"hammer, {h}" + ("" if h.passed else "  <- over the limit") for h in r.hammers),
            f"keys without TTL: {ttl}",
            f"cleanup: {r.cleanup}",
        ]
        if r.errors:
            lines.append(f"errors: {len(r.errors)}")
        table.add_row(r.name, result, "\n".join(lines))
    return table
