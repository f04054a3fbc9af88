"""``limits-core bench``: decisions per second and latency of each algorithm, and of peers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from limits_core import __version__
from limits_core.benchmarking import (
    ALLOW_RATE,
    DENY_RATE,
    Contender,
    Measurement,
    Workload,
    combine,
    measure,
    measure_async,
)
from limits_core.cli._common import add_algorithm_option, selected_algorithms
from limits_core.contenders import Setup, aours, cleanup, family, ours, peer_specs
from limits_core.rate import Rate
from limits_core.urls import backend_from_url, mask_url


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="time each algorithm on a store, side by side with other libraries (--peers)",
        description=(
            "Times decisions per second and p50/p99 latency of each algorithm on a store "
            "(in memory by default, no server needed), optionally against peer libraries "
            "on the same kind of store, and prints a table with the ratios."
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
        "--path",
        choices=("allow", "deny"),
        default="allow",
        help="every request admitted, or every request denied (default: allow)",
    )
    parser.add_argument(
        "--rate",
        default=None,
        help=f"the limit (default: {ALLOW_RATE} on the allow path, {DENY_RATE} on the deny path)",
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=10_000,
        metavar="N",
        help="distinct keys hit in turn; 1 is one hot key (default: 10000)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="timed seconds per contender, all rounds together (default: 2)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="1: one thread, sync limiter; N > 1: N asyncio tasks, async limiter (default: 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        metavar="N",
        help="alternate the contenders N times and report each one's median round, so that "
        "a busy moment of the machine slows them all alike (default: 3)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also time limits, pyrate-limiter and throttled-py where installed",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    rate = Rate.parse(args.rate or (ALLOW_RATE if args.path == "allow" else DENY_RATE))
    if not 0 < args.duration <= 3600 or not 1 <= args.rounds <= 100:
        console.print("[red]--duration must be in (0, 3600] seconds, --rounds in [1, 100][/red]")
        return 2
    backend_from_url(args.backend).close()  # a bad URL or a missing extra fails here, early
    token = f"lcb-{secrets.token_hex(4)}"
    setup = Setup(args.backend, rate, args.keys, prefix=f"{token}:")
    workload = Workload(args.keys, args.path, rate, key_prefix=f"{token}:k")
    tasks = args.concurrency if args.concurrency > 1 else 0
    runs = _plan(args, setup, tasks)
    specs, skipped = (
        peer_specs(list(selected_algorithms(args)), family(args.backend), tasks > 0)
        if args.peers
        else ([], [])
    )
    for spec in specs:
        runs.append((spec.name, _peer_runner(spec, setup, tasks)))
    results, failed = _run_all(console, runs, workload, args.duration / args.rounds, args.rounds)
    cleanup(setup)
    console.print(_table(args, setup, results, tasks))
    for name, reason in [*skipped, *failed]:
        console.print(f"[yellow]skipped {name}[/yellow]: {reason}", highlight=False)
    for m in results:
        if m.unexpected:
            console.print(
                f"[red]{m.name}: {m.unexpected} of {m.samples} sampled decisions "
                f"were {'denied' if args.path == 'allow' else 'admitted'}: the workload did "
                "not hold[/red]"
            )
    if args.json:
        document = _document(args, setup, results, skipped + failed, tasks)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    # A peer may fail (a missing optional driver); limits-core failing on the store may not.
    return 1 if any(name.startswith("limits-core") for name, _ in failed) else 0


Runner = Callable[[Workload, float, Callable[[float], None]], Measurement]


def _plan(args: argparse.Namespace, setup: Setup, tasks: int) -> list[tuple[str, Runner]]:
    plan: list[tuple[str, Runner]] = []
    for kind, build in selected_algorithms(args).items():

        def make(kind: str = kind, build: Any = build) -> Contender:
            return ours(setup, kind, build)

        async def amake(kind: str = kind, build: Any = build) -> Contender:
            return await aours(setup, kind, build)

        runner = _async_runner(amake, tasks) if tasks else _sync_runner(make)
        plan.append((f"limits-core {kind}", runner))
    return plan


def _peer_runner(spec: Any, setup: Setup, tasks: int) -> Runner:
    if tasks:
        return _async_runner(lambda: spec.acontender(setup), tasks)
    return _sync_runner(lambda: spec.contender(setup, False))


def _sync_runner(make: Callable[[], Contender]) -> Runner:
    def run(workload: Workload, duration: float, progress: Callable[[float], None]) -> Measurement:
        contender = make()
        try:
            return measure(contender, workload, duration, progress)
        finally:
            if contender.close is not None:
                contender.close()

    return run


def _async_runner(make: Callable[[], Any], tasks: int) -> Runner:
    async def go(workload: Workload, duration: float, progress: Callable[[float], None]) -> Any:
        contender: Contender = await make()
        try:
            return await measure_async(contender, workload, duration, tasks, progress)
        finally:
            if contender.aclose is not None:
                await contender.aclose()

    def run(workload: Workload, duration: float, progress: Callable[[float], None]) -> Measurement:
        result: Measurement = asyncio.run(go(workload, duration, progress))
        return result

    return run


def _run_all(
    console: Console,
    runs: list[tuple[str, Runner]],
    workload: Workload,
    duration: float,
    rounds: int,
) -> tuple[list[Measurement], list[tuple[str, str]]]:
    """Run every contender ``rounds`` times in turn; a contender that fails is dropped."""
    measured: dict[str, list[Measurement]] = {name: [] for name, _ in runs}
    failed: dict[str, str] = {}
    columns = (TextColumn("{task.description:<32}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks = {name: progress.add_task(name, total=rounds) for name, _ in runs}
        for done in range(rounds):
            for number, (name, runner) in enumerate(runs):
                if name in failed:
                    continue

                def show(fraction: float, task: Any = tasks[name], done: int = done) -> None:
                    progress.update(task, completed=done + fraction)

                try:
                    # Keys of their own: peers store different types under similar names.
                    own = replace(workload, key_prefix=f"{workload.key_prefix}{number}:")
                    measured[name].append(runner(own, duration, show))
                except Exception as exc:  # a peer or a store failing must not hide the others
                    failed[name] = f"failed: {type(exc).__name__}: {exc}"
                progress.update(tasks[name], completed=done + 1)
    results = [combine(m) for name, m in measured.items() if m and name not in failed]
    return results, list(failed.items())


def _ratios(results: list[Measurement]) -> dict[str, tuple[float, str]]:
    """Peer name -> (ours ÷ peer in decisions per second, our contender's name)."""
    ours_by_kind = {m.kind: m for m in results if m.ours}
    out = {}
    for m in results:
        mine = ours_by_kind.get(m.kind)
        if not m.ours and mine is not None and m.per_second > 0:
            out[m.name] = (mine.per_second / m.per_second, mine.name)
    return out


def _describe(args: argparse.Namespace, setup: Setup, tasks: int) -> str:
    mode = f"{tasks} asyncio tasks" if tasks else "one thread"
    keys = "one hot key" if setup.keys == 1 else f"{setup.keys:,} keys"
    return f"{mask_url(args.backend)}, {args.path} path ({setup.rate}), {keys}, {mode}"


def _table(args: argparse.Namespace, setup: Setup, results: list[Measurement], tasks: int) -> Table:
    ratios = _ratios(results)
    table = Table(title=f"limits-core bench: {_describe(args, setup, tasks)}", title_justify="left")
    table.add_column("contender", no_wrap=True)
    table.add_column("decisions/s", justify="right")
    table.add_column("p50 µs", justify="right")
    table.add_column("p99 µs", justify="right")
    if ratios:
        table.add_column("ours ÷ peer", justify="right")
    for m in results:
        row = [m.name, f"{m.per_second:,.0f}", f"{m.p50_us:.2f}", f"{m.p99_us:.2f}"]
        if ratios:
            ratio = ratios.get(m.name)
            row.append(f"{ratio[0]:.2f}x" if ratio else "")
        table.add_row(*row, style="bold" if m.ours else None)
    table.caption = (
        f"{args.duration:g} s per contender in {args.rounds} alternating rounds (median "
        f"round shown); Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Ours ÷ peer: decisions/s of the limits-core algorithm with "
        "the same semantics (fixed window; sliding log for limits MovingWindow and "
        "pyrate-limiter; token bucket) over the peer's; above 1, limits-core is faster."
    )
    return table


def _document(
    args: argparse.Namespace,
    setup: Setup,
    results: list[Measurement],
    skipped: list[tuple[str, str]],
    tasks: int,
) -> dict[str, Any]:
    ratios = _ratios(results)
    rows = []
    for m in results:
        row = m.as_dict()
        ratio = ratios.get(m.name)
        row["ratio"] = None if ratio is None else round(ratio[0], 4)
        row["ratio_against"] = None if ratio is None else ratio[1]
        rows.append(row)
    return {
        "limits_core_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "backend": mask_url(args.backend),
        "workload": {
            "path": args.path,
            "rate": str(setup.rate),
            "keys": setup.keys,
            "duration": args.duration,
            "rounds": args.rounds,
            "concurrency": tasks or 1,
        },
        "results": rows,
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
    }
