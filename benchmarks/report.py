"""Write ``docs/benchmarks.md`` from one run of the benchmark suites.

Run ``scripts/benchmark-docs``, which times the suites against the local servers and calls
``python -m benchmarks.report SUITE.json BENCH.json > docs/benchmarks.md``. Every figure on the
page comes from those two files, produced by the commands the page names.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.ratios import load_groups, markdown

_INTRO = """\
# Benchmarks

Measured on {machine}, {when}. Every contender ran in the same session against the same
servers (Redis {redis}, PostgreSQL {postgres} on loopback), alternating with the others, so
compare figures within a table, not across machines or runs. On a 2-core machine a round trip
costs about 30 µs when client and server share a core and about 150 µs when they don't,
so absolute rates swing widely between runs.

Regenerate this page with `scripts/benchmark-docs` (it runs the two commands below and this
report).

## In-memory backend, one thread (`limits-core bench --peers`)

`{bench_command}`

| contender | decisions/s | p50 µs | p99 µs | ours ÷ peer |
|---|---:|---:|---:|---:|
{bench_rows}

## The benchmark suite (`pytest benchmarks`)

`{suite_command}`

Each table is one comparison: rows are limits-core's algorithms, columns divide their rate by
each peer's (`limits`, `throttled-py`, `pyrate-limiter`) or by the raw client floor (a bare
redis-py call of the classic script, a bare asyncpg upsert). Above 1, limits-core is faster.
Groups named "x50", "x1000" or "x3000" time that many decisions per call (concurrent ones for
"async") and are reported per decision. Bold ratios are paired: each round of the limits-core
contender followed a round of that peer, milliseconds apart, and the figure is the median
ratio of those adjacent rounds, steadier than the quotient of two medians taken seconds apart
on a machine whose speed changes by half within seconds. The CPU instructions of one in-memory
decision, which do not change with the machine's load, are counted by
`python -m benchmarks.instructions` (valgrind).

"""


def _bench_rows(bench: dict[str, Any]) -> str:
    rows = []
    for result in bench.get("results", []):
        ratio = result.get("ratio")
        rows.append(
            f"| {result['name']} | {result['decisions_per_second']:,.0f} "
            f"| {result['p50_us']:.1f} | {result['p99_us']:.1f} "
            f"| {'' if ratio is None else f'{ratio:.2f}'} |"
        )
    return "\n".join(rows)


def render(suite: dict[str, Any], bench: dict[str, Any], env: dict[str, str]) -> str:
    """The Markdown page for one suite JSON and one ``limits-core bench --json`` file."""
    machine = suite.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or platform.processor() or "unknown CPU"
    page = _INTRO.format(
        machine=f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        when=suite.get("datetime", "")[:16].replace("T", " ") + " UTC",
        redis=env.get("REDIS_VERSION", "?"),
        postgres=env.get("POSTGRES_VERSION", "?"),
        bench_command=env.get("BENCH_COMMAND", "limits-core bench --peers"),
        bench_rows=_bench_rows(bench),
        suite_command=env.get("SUITE_COMMAND", "pytest benchmarks"),
    )
    return page + markdown(load_groups([suite]))


#: The contenders of test_async_tasks that ours is divided by.
_TASK_OURS = "limits-core FixedWindow (async)"
_TASK_OTHERS = ("limits-core FixedWindow (async, uncoalesced)", "limits FixedWindow (async)")


def tasks_section(document: dict[str, Any]) -> str:
    """The table of ``benchmarks/test_redis_bench.py::test_async_tasks``: long-lived tasks
    deciding one request after another, contenders alternating turn by turn."""
    contenders = document["contenders"]
    rates = {
        name: statistics.median(t["per_second"] for t in turns)
        for name, turns in contenders.items()
    }
    lines = [
        "",
        f"### Redis, {document['tasks']} tasks x {document['calls_per_task']} calls on "
        f"{document['keys']:,} keys (`test_async_tasks`)",
        "",
        f"Each task decides one request after another; the contenders alternate turn by turn, "
        f"{document['turns']} turns each. Decisions per second: median [min-max] of the turns; "
        "latency of one call: median of the turns' percentiles.",
        "",
        "| contender | decisions/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, turns in contenders.items():
        per_second = sorted(t["per_second"] for t in turns)
        p50 = statistics.median(t["p50_s"] for t in turns) * 1000
        p99 = statistics.median(t["p99_s"] for t in turns) * 1000
        lines.append(
            f"| {name} | {rates[name]:,.0f} [{per_second[0]:,.0f}-{per_second[-1]:,.0f}] "
            f"| {p50:.2f} | {p99:.2f} |"
        )
    if _TASK_OURS in rates:
        ratios = ", ".join(
            f"{rates[_TASK_OURS] / rates[other]:.2f}x {other}"
            for other in _TASK_OTHERS
            if other in rates
        )
        lines += ["", f"{_TASK_OURS}: {ratios}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("suite", type=Path, help="pytest-benchmark JSON of the suite")
    parser.add_argument("bench", type=Path, help="limits-core bench --json output")
    parser.add_argument(
        "--tasks",
        type=Path,
        help="the JSON test_async_tasks writes (LIMITS_CORE_BENCH_TASKS_JSON)",
    )
    parser.add_argument(
        "--instructions",
        type=Path,
        help="the tables printed by python -m benchmarks.instructions, appended as they are",
    )
    args = parser.parse_args(argv)
    suite = json.loads(args.suite.read_text())
    bench = json.loads(args.bench.read_text())
    page = render(suite, bench, dict(os.environ))
    if args.tasks is not None:
        page += tasks_section(json.loads(args.tasks.read_text()))
    if args.instructions is not None:
        page += (
            "\n## Instructions per in-memory decision (`python -m benchmarks.instructions`)\n"
            + args.instructions.read_text()
        )
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
