"""Turn a pytest-benchmark JSON into Markdown ratio tables: ours ÷ each peer, ours ÷ floor.

Run: ``python -m benchmarks.ratios FILE.json [FILE.json ...] > ratios.md``
(save the JSON with ``pytest benchmarks/ --benchmark-json=FILE.json``).

Conventions of the suite this reads:

- a benchmark's ``group`` is one comparison (``"memory x1000 hot-allow"``, ``"sync 10k"``,
  ``"async x50 hot"``), its ``name`` the contender;
- names starting with ``limits-core`` are ours, names starting with ``raw`` are floors (a bare
  client call, e.g. ``"raw redis-py script"``), everything else is a peer (``"limits
  FixedWindow"``, ``"throttled TokenBucket"``);
- a group named ``... xN ...`` (``async x50 hot``, ``memory x1000 hot-allow``) times N
  decisions per call, so its rates are multiplied by N;
- a name appearing several times in a group (alternating repeats) counts with its median;
- a benchmark whose ``extra_info["paired"]`` maps a peer to a ratio (its rounds alternated
  with the peer's, and this is the median ratio of adjacent rounds) shows that ratio, in bold,
  in the peer's column instead of the quotient of the two medians: adjacent rounds saw the
  same speed of the machine.

Rates are medians: decisions per second from the median time of a call, which resists the
outliers of a busy machine better than the mean.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OURS = "limits-core"
FLOOR = "raw"
_PER_CALL = re.compile(r"\bx(\d+)\b")


@dataclass
class Group:
    """The contenders of one comparison, with their decisions per second."""

    name: str
    rates: dict[str, list[float]] = field(default_factory=dict)
    #: 99th percentile of one decision's latency (ms), for benchmarks that record it
    #: (``extra_info["p99_ms"]``), by contender.
    p99_ms: dict[str, list[float]] = field(default_factory=dict)
    #: Paired ratios (``extra_info["paired"]``), by (contender, peer).
    paired: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def rate(self, contender: str) -> float:
        return statistics.median(self.rates[contender])

    def ours(self) -> list[str]:
        return [n for n in self.rates if n.startswith(OURS)]

    def floors(self) -> list[str]:
        return [n for n in self.rates if n.startswith(FLOOR)]

    def peers(self) -> list[str]:
        return [n for n in self.rates if not n.startswith((OURS, FLOOR))]


def load_groups(documents: Sequence[dict[str, Any]]) -> list[Group]:
    """Groups in order of first appearance, from one or more pytest-benchmark documents."""
    groups: dict[str, Group] = {}
    for document in documents:
        for bench in document.get("benchmarks", []):
            stats = bench.get("stats") or {}
            median = stats.get("median")
            if not median:  # --benchmark-disable leaves no timings
                continue
            name = bench.get("group") or "(no group)"
            match = _PER_CALL.search(name)
            per_call = int(match.group(1)) if match else 1
            group = groups.setdefault(name, Group(name))
            group.rates.setdefault(bench["name"], []).append(per_call / median)
            extra = bench.get("extra_info") or {}
            p99 = extra.get("p99_ms")
            if p99 is not None:
                group.p99_ms.setdefault(bench["name"], []).append(p99)
            for peer, ratio in (extra.get("paired") or {}).items():
                group.paired.setdefault((bench["name"], peer), []).append(ratio)
    return list(groups.values())


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k/s"
    return f"{value:.0f}/s"


def markdown(groups: Sequence[Group]) -> str:
    """One table per group: a row per limits-core contender, a column per peer and floor."""
    out: list[str] = []
    for group in groups:
        ours, others = group.ours(), group.peers() + group.floors()
        out.append(f"### {group.name}\n")
        if not ours:
            out.append("(no limits-core contender in this group)\n")
            continue
        header = ["limits-core", "decisions/s"]
        header += [f"÷ {n} ({_rate(group.rate(n))})" for n in others]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for name in ours:
            mine = group.rate(name)
            cells = [name.removeprefix(OURS).strip() or name, _rate(mine)]
            for other in others:
                paired = group.paired.get((name, other))
                if paired:
                    cells.append(f"**{statistics.median(paired):.2f}**")
                else:
                    cells.append(f"{mine / group.rate(other):.2f}")
            out.append("| " + " | ".join(cells) + " |")
        if group.paired:
            out.append(
                "\nIn bold: the median ratio of adjacent rounds (each round of the limits-core "
                "contender followed a round of that peer)."
            )
        if group.p99_ms:
            latencies = ", ".join(
                f"{name} {statistics.median(values):.1f} ms"
                for name, values in group.p99_ms.items()
            )
            out.append(f"\n99th percentile of one decision's latency: {latencies}.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ratios", description=__doc__.split("\n")[0]
    )
    parser.add_argument("files", nargs="+", type=Path, help="pytest-benchmark JSON files")
    args = parser.parse_args(argv)
    documents = [json.loads(path.read_text()) for path in args.files]
    groups = load_groups(documents)
    if not groups:
        print(
            "no timed benchmarks in the input (was it run with --benchmark-disable?)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(markdown(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
