"""``limits-core demo``: push a traffic burst through each algorithm on the in-memory backend."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core.algorithm import Algorithm
from limits_core.clock import ManualClock
from limits_core.limiter import Limiter


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="show how each algorithm shapes a burst (in memory, no server needed)",
        description=(
            "Sends a burst of requests at one key, in virtual time, through each algorithm on "
            "the in-memory backend, and prints the requests admitted and denied each second, "
            "then times how many decisions per second each algorithm makes."
        ),
    )
    parser.add_argument("--rate", default="10/second", help="the limit (default 10/second)")
    parser.add_argument("--seconds", type=int, default=5, help="virtual seconds to simulate")
    parser.add_argument(
        "--per-second", type=int, default=25, help="requests sent each virtual second"
    )
    parser.set_defaults(run=run)


def _algorithms(rate: str) -> list[Algorithm]:
    return [FixedWindow(rate), SlidingLog(rate), TokenBucket(rate)]


def _burst(algorithm: Algorithm, seconds: int, per_second: int) -> list[tuple[int, int]]:
    clock = ManualClock(start=1_700_000_000.0)
    limiter = Limiter(algorithm, MemoryBackend(), clock=clock)
    rows = []
    for _ in range(seconds):
        admitted = 0
        for _ in range(per_second):
            admitted += limiter.hit("demo").allowed
            clock.advance(1.0 / per_second)
        rows.append((admitted, per_second - admitted))
    return rows


def _decisions_per_second(algorithm: Algorithm, seconds: float = 0.3) -> float:
    limiter = Limiter(algorithm, MemoryBackend())
    hit = limiter.hit
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            hit("demo")
        count += 1000
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def run(args: argparse.Namespace) -> int:
    console = Console()
    for algorithm in _algorithms(args.rate):
        rows = _burst(algorithm, args.seconds, args.per_second)
        table = Table(title=f"{type(algorithm).__name__}({args.rate!r})", title_justify="left")
        table.add_column("second", justify="right")
        table.add_column("admitted", justify="right", style="green")
        table.add_column("denied", justify="right", style="red")
        for second, (admitted, denied) in enumerate(rows):
            table.add_row(str(second), str(admitted), str(denied))
        rate = _decisions_per_second(algorithm)
        table.caption = f"{rate:,.0f} decisions per second (one thread, one hot key)"
        console.print(table)
    return 0
