"""The fault suite's measured table, as JSON and as Markdown.

``python -m tests.faults.report [--json out.json]`` runs every scenario
(about half a minute) on servers it starts itself and prints the table; the pytest suite
writes the same JSON when ``LIMITS_CORE_FAULTS_REPORT`` names a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.faults.harness import PolicyResult

__all__ = ["main", "markdown", "write_report"]


def _errors(row: dict[str, Any]) -> str:
    return ", ".join(f"{n} {name}" for name, n in row["errors"].items()) or "none"


def _handled(row: dict[str, Any]) -> str:
    parts = []
    if row["passed_open"]:
        parts.append(f"{row['passed_open']} passed")
    if row["answered_503"]:
        parts.append(f"{row['answered_503']} got 503")
    if row["fallback_decisions"]:
        parts.append(f"{row['fallback_decisions']} by fallback")
    return ", ".join(parts) or "-"


def markdown(rows: Iterable[dict[str, Any]]) -> str:
    """The table of docs/reliability.md."""
    lines = [
        "| Fault | on_error | Calls | Store errors (type) | Those calls | Worst latency "
        "| Less CPU wait (timeout) | Over limit: healthy / during fault | Double counts "
        "| Lost counts |",
        "|---|---|--:|---|---|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fault']} | {row['policy']} | {row['calls']} | {_errors(row)} "
            f"| {_handled(row)} | {row['worst_latency_s']:.3f} s "
            f"| {row['worst_wait_s']:.3f} s ({row['timeout_s']:g} s) "
            f"| {row['over_admitted_healthy']} / {row['over_admitted_during_fault']} "
            f"| {row['double_counts']} | {row['lost_counts']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(results: Sequence[PolicyResult], path: Path) -> None:
    """Write the results as JSON to ``path`` and as Markdown next to it (``.md``)."""
    rows = [r.summary() for r in results]
    document = {"machine": f"{platform.machine()}, {platform.python_version()}", "rows": rows}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(markdown(rows), encoding="utf-8")


async def _run_all() -> list[PolicyResult]:
    from tests.faults.scenarios import SCENARIOS, servers

    results: list[PolicyResult] = []
    with servers() as where:
        for scenario in SCENARIOS:
            print(f"running {scenario.name} ...", file=sys.stderr)
            results.extend(await scenario.run(where))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__)
    parser.add_argument("--json", type=Path, help="write the results here (and a .md beside)")
    args = parser.parse_args(argv)
    results = asyncio.run(_run_all())
    if args.json:
        write_report(results, args.json)
    print(markdown(r.summary() for r in results), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
