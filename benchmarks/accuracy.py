"""How closely each algorithm keeps to its rate: the same traffic through all of them.

Run: ``python -m benchmarks.accuracy --out docs/accuracy``. It writes ``accuracy.md`` (the
table) and ``accuracy.png`` (admitted and denied requests over time, per algorithm and
pattern; needs matplotlib, the ``plot`` extra).

Every algorithm gets the same rate (100 per minute; bursts and capacities default to the
limit) and the same requests, of cost 1 on one key, through a :class:`Limiter` on a
:class:`MemoryBackend` driven by a :class:`ManualClock`. The traffic patterns, over six
periods starting on an epoch-aligned window boundary:

- ``steady``: evenly spaced requests at 90 % of the rate; nothing should be denied.
- ``bursts``: ``0.6 * limit`` requests 1 ms apart every half period (120 % of the rate on
  average, arriving in clumps).
- ``boundary``: an attacker who knows where windows start: one request at the start of a
  period (it opens the fixed window there), then ``limit`` requests in the last second
  before the next boundary and ``limit`` in the first second after it; repeated every other
  period.
- ``poisson``: Poisson arrivals at 150 % of the rate (seeded, so runs are reproducible).

Per algorithm and pattern:

- ``worst / limit``: the most cost admitted in any trailing period ``(t - period, t]``,
  divided by the limit (1.00 is the exact promise; above it, over-admission).
- ``false denials``: of the requests the exact sliding log admits when it gets the same
  traffic, the share this algorithm denied.
- ``needless denials``: of the requests this algorithm denied, the share that would have fit
  in the trailing period given what the algorithm itself had admitted (the log's verdict on
  the algorithm's own history).
- ``state bytes``: the largest ``sys.getsizeof`` of the key's stored state during the run,
  counted recursively (CPython objects; Redis and PostgreSQL store the same integers).
"""

from __future__ import annotations

import argparse
import random
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorithms import (
    GCRA,
    FixedWindow,
    LeakyBucket,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from backends.memory import MemoryBackend
from limits_core import Limiter, ManualClock, Rate
from limits_core.algorithm import Algorithm

RATE = Rate(100, 60.0)
#: A multiple of every period used here, so the run starts on an aligned window boundary.
START_US = 1_699_999_200_000_000
PERIODS = 6
SEED = 20_240_601

ALGORITHMS: dict[str, Callable[[Rate], Algorithm]] = {
    "FixedWindow": FixedWindow,
    "SlidingLog": SlidingLog,
    "SlidingWindowCounter": SlidingWindowCounter,
    "TokenBucket": TokenBucket,
    "GCRA": GCRA,
    "LeakyBucket": LeakyBucket,
}

#: Integers a key's state holds, for the table's notes.
STATE_INTEGERS = {
    "FixedWindow": "2",
    "SlidingLog": "2 per admitted request in the period (+ slack)",
    "SlidingWindowCounter": "3",
    "TokenBucket": "2",
    "GCRA": "2",
    "LeakyBucket": "2",
}


def steady(rate: Rate, periods: int) -> list[int]:
    """Offsets in microseconds of requests evenly spaced at 90 % of the rate."""
    gap = rate.period_us * 10 // (9 * rate.limit)
    return list(range(0, periods * rate.period_us, gap))


def bursts(rate: Rate, periods: int) -> list[int]:
    """``0.6 * limit`` requests 1 ms apart every half period."""
    size = max(1, 6 * rate.limit // 10)
    half = rate.period_us // 2
    return [k * half + i * 1000 for k in range(2 * periods) for i in range(size)]


def boundary(rate: Rate, periods: int) -> list[int]:
    """One request opening a period, then ``limit`` just before its end and ``limit`` after."""
    out: list[int] = []
    second, n = 1_000_000, rate.limit
    for k in range(0, periods - 1, 2):
        edge = (k + 1) * rate.period_us
        out.append(k * rate.period_us)
        out.extend(edge - second + i * second // n for i in range(n))
        out.extend(edge + i * second // n for i in range(n))
    return out


def poisson(rate: Rate, periods: int, seed: int = SEED) -> list[int]:
    """Poisson arrivals at 150 % of the rate."""
    rng = random.Random(seed)
    per_us = 1.5 * rate.limit / rate.period_us
    out, t = [], 0.0
    while True:
        t += rng.expovariate(per_us)
        if t >= periods * rate.period_us:
            return out
        out.append(int(t))


PATTERNS: dict[str, Callable[[Rate, int], list[int]]] = {
    "steady": steady,
    "bursts": bursts,
    "boundary": boundary,
    "poisson": poisson,
}


def deep_sizeof(obj: object, seen: set[int] | None = None) -> int:
    """``sys.getsizeof`` of ``obj`` and everything it holds, each object counted once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    children: Iterable[Any] = ()
    if isinstance(obj, tuple | list | set | frozenset):
        children = obj
    elif isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif hasattr(obj, "__slots__"):
        children = [getattr(obj, name) for name in obj.__slots__ if hasattr(obj, name)]
    elif hasattr(obj, "__dict__"):
        children = vars(obj).values()
    return size + sum(deep_sizeof(child, seen) for child in children)


@dataclass(frozen=True)
class Run:
    """One algorithm on one pattern: what happened to each request."""

    times: list[int]  # offsets in microseconds, sorted
    allowed: list[bool]
    state_bytes: int


def run(algorithm: Algorithm, times: list[int]) -> Run:
    """Send ``times`` through a limiter on the memory backend, with the model alongside."""
    clock = ManualClock(start=START_US / 1_000_000)
    limiter = Limiter(algorithm, MemoryBackend(), clock=clock)
    now, state, biggest = START_US, None, 0
    allowed = []
    for offset in times:
        at = START_US + offset
        clock.advance((at - now) / 1_000_000)
        now = at
        decision = limiter.hit("client")
        # The pure model, stepped alongside, must agree; it shows the state the key holds.
        expected, new_state, _ = algorithm.step(state, now, 1)
        assert decision == expected, (algorithm, offset, decision, expected)
        if decision.allowed:
            state = new_state
            biggest = max(biggest, deep_sizeof(state))
        allowed.append(decision.allowed)
    return Run(times, allowed, biggest)


def worst_trailing(rate: Rate, result: Run) -> int:
    """The most cost admitted in any trailing period ``(t - period, t]``."""
    admitted = [t for t, ok in zip(result.times, result.allowed, strict=True) if ok]
    worst = lo = 0
    for hi, t in enumerate(admitted):
        while admitted[lo] <= t - rate.period_us:
            lo += 1
        worst = max(worst, hi - lo + 1)
    return worst


def needless_denials(rate: Rate, result: Run) -> int:
    """Denials that the algorithm's own admissions in the trailing period left room for."""
    admitted: list[int] = []
    needless = 0
    for t, ok in zip(result.times, result.allowed, strict=True):
        if ok:
            admitted.append(t)
        elif len(admitted) - bisect_right(admitted, t - rate.period_us) + 1 <= rate.limit:
            needless += 1
    return needless


@dataclass(frozen=True)
class Row:
    pattern: str
    algorithm: str
    requests: int
    admitted: int
    worst_ratio: float
    false_denial_rate: float
    needless_denial_rate: float
    state_bytes: int


def measure(
    rate: Rate = RATE, periods: int = PERIODS
) -> tuple[list[Row], dict[str, dict[str, Run]]]:
    """Every pattern through every algorithm: the table's rows and the runs behind them."""
    rows: list[Row] = []
    runs: dict[str, dict[str, Run]] = {}
    for pattern, make in PATTERNS.items():
        times = make(rate, periods)
        runs[pattern] = {name: run(kind(rate), times) for name, kind in ALGORITHMS.items()}
        exact = runs[pattern]["SlidingLog"].allowed
        exact_admits = sum(exact)
        for name, result in runs[pattern].items():
            false = sum(e and not a for e, a in zip(exact, result.allowed, strict=True))
            denied = len(times) - sum(result.allowed)
            rows.append(
                Row(
                    pattern=pattern,
                    algorithm=name,
                    requests=len(times),
                    admitted=sum(result.allowed),
                    worst_ratio=worst_trailing(rate, result) / rate.limit,
                    false_denial_rate=false / exact_admits if exact_admits else 0.0,
                    needless_denial_rate=(
                        needless_denials(rate, result) / denied if denied else 0.0
                    ),
                    state_bytes=result.state_bytes,
                )
            )
    return rows, runs


def markdown(rows: list[Row], rate: Rate = RATE, periods: int = PERIODS) -> str:
    lines = [
        "# Accuracy of the algorithms",
        "",
        f"Rate `{rate}`, {periods} periods of traffic, one key, cost 1; bursts and capacities",
        "default to the limit. Generated by `python -m benchmarks.accuracy --out docs/accuracy`;",
        "the patterns and columns are defined in `benchmarks/accuracy.py`.",
        "",
        "- **worst / limit**: most admitted in any trailing period, over the limit.",
        "- **false denials**: share of the requests the exact sliding log admits (same traffic)",
        "  that the algorithm denied.",
        "- **needless denials**: share of the algorithm's denials that would have fit given",
        "  what it had itself admitted in the trailing period.",
        "- **state bytes**: largest CPython size of the key's state during the run.",
        "",
        "| pattern | algorithm | requests | admitted | worst / limit | false denials "
        "| needless denials | state bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.pattern} | {r.algorithm} | {r.requests} | {r.admitted} "
            f"| {r.worst_ratio:.2f} | {r.false_denial_rate:.1%} "
            f"| {r.needless_denial_rate:.1%} | {r.state_bytes} |"
        )
    lines += ["", "Integers of state per key:", ""]
    lines += [f"- {name}: {count}" for name, count in STATE_INTEGERS.items()]
    lines += ["", "![admitted and denied requests over time](accuracy.png)", ""]
    return "\n".join(lines)


def plot(runs: dict[str, dict[str, Run]], path: Path, rate: Rate = RATE) -> None:
    """Admitted (green) and denied (red) requests per tenth of a period, stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patterns, names = list(runs), list(ALGORITHMS)
    fig, axes = plt.subplots(
        len(names), len(patterns), figsize=(4.2 * len(patterns), 1.7 * len(names)),
        sharex=True, squeeze=False,
    )  # fmt: skip
    bin_us = rate.period_us // 10
    for col, pattern in enumerate(patterns):
        for row, name in enumerate(names):
            result = runs[pattern][name]
            ax = axes[row][col]
            bins = PERIODS * 10
            ok, no = [0] * bins, [0] * bins
            for t, allowed in zip(result.times, result.allowed, strict=True):
                (ok if allowed else no)[min(t // bin_us, bins - 1)] += 1
            left = [i * bin_us / 1_000_000 for i in range(bins)]
            width = bin_us / 1_000_000
            ax.bar(left, ok, width=width, align="edge", color="tab:green", label="admitted")
            ax.bar(left, no, width=width, align="edge", bottom=ok, color="tab:red",
                   label="denied")  # fmt: skip
            for k in range(1, PERIODS):
                ax.axvline(k * rate.period, color="grey", linewidth=0.5, linestyle=":")
            if row == 0:
                ax.set_title(pattern)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
            if row == len(names) - 1:
                ax.set_xlabel("seconds")
    axes[0][0].legend(loc="upper right", fontsize=7)
    fig.suptitle(f"Requests per {bin_us / 1_000_000:g} s at {rate}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("docs/accuracy"))
    parser.add_argument("--no-plot", action="store_true", help="write only the table")
    args = parser.parse_args(argv)
    rows, runs = measure()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.md").write_text(markdown(rows))
    if not args.no_plot:
        plot(runs, args.out / "accuracy.png")
    print(markdown(rows))


if __name__ == "__main__":
    main()
