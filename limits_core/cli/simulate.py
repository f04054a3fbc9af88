"""``limits-core simulate``: one traffic pattern through each algorithm, in virtual time."""

from __future__ import annotations

import argparse
import random
from typing import Any

from rich.console import Console
from rich.table import Table

from limits_core.cli._common import add_algorithm_option, selected_algorithms
from limits_core.rate import Rate
from limits_core.simulation import PATTERNS, Simulation, simulate


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="show how each algorithm shapes a traffic pattern (virtual time, in memory)",
        description=(
            "Sends a traffic pattern at one key through each algorithm on the in-memory "
            "backend, in virtual time (a ManualClock), and prints the requests admitted and "
            "denied in each bin; --plot draws them (needs matplotlib: the 'plot' extra). "
            "Patterns: steady (90% of the rate, evenly spaced), burst (twice the limit in "
            "a tenth of a period, every three periods), boundary (the limit just before a "
            "window ends and again just after), poisson (random arrivals at 90% of the rate)."
        ),
    )
    parser.add_argument(
        "--pattern",
        choices=list(PATTERNS),
        default="boundary",
        help="the traffic (default: boundary)",
    )
    add_algorithm_option(parser)
    parser.add_argument("--rate", default="100/10s", help="the limit (default: 100/10s)")
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="virtual seconds to simulate (default: 40)"
    )
    parser.add_argument(
        "--bin",
        type=float,
        default=1.0,
        dest="bin_seconds",
        help="seconds per row of the table (default: 1)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the poisson pattern (default: 0)"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the runs into a PNG")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    rate = Rate.parse(args.rate)
    if args.plot:
        from limits_core.plotting import import_pyplot

        import_pyplot()  # fail before simulating when matplotlib is missing
    arrivals = PATTERNS[args.pattern]().arrivals(rate, args.seconds, random.Random(args.seed))
    runs = [
        (name, simulate(build(rate), arrivals, seconds=args.seconds, bin_seconds=args.bin_seconds))
        for name, build in selected_algorithms(args).items()
    ]
    console.print(_table(args, rate, runs))
    for name, sim in runs:
        peak = sim.max_admitted_within(rate.period_us)
        console.print(
            f"{name}: admitted {sum(sim.admitted)} of {len(arrivals)}; at most {peak} within "
            f"any {rate.period:g} s (limit {rate.limit})"
        )
    if args.plot:
        from limits_core.plotting import plot_simulations

        title = f"{args.pattern} traffic, limit {rate}"
        console.print(f"wrote {plot_simulations(runs, rate, args.plot, title)}")
    return 0


def _table(args: argparse.Namespace, rate: Rate, runs: list[tuple[str, Simulation]]) -> Table:
    table = Table(title=f"{args.pattern} traffic at one key, limit {rate}", title_justify="left")
    table.add_column("second", justify="right")
    table.add_column("sent", justify="right")
    for name, _ in runs:
        table.add_column(f"{name}\nadmitted", justify="right", style="green")
        table.add_column("denied", justify="right", style="red")
    sent = runs[0][1].sent
    for i, count in enumerate(sent):
        cells = [f"{i * args.bin_seconds:g}", str(count)]
        for _, sim in runs:
            cells += [str(sim.admitted[i]), str(sim.denied[i])]
        table.add_row(*cells)
    return table
