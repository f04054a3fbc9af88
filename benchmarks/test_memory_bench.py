"""In-memory backend against ``limits`` 5.x ``MemoryStorage``, on the same workloads.

Run: ``pytest benchmarks/test_memory_bench.py -p no:randomly`` (``python -m benchmarks.ratios``
turns its ``--benchmark-json`` into the ratio tables).

Each timed round is ``CALLS`` decisions, one call after another on one thread (groups
``memory x1000 ...``, reported per decision): timing a thousand calls at once keeps the timer's
own cost, comparable to a decision's, out of the figures. Contenders alternate: the whole list
is measured ``REPEATS`` times in turn, and the tables take each contender's median. Before
each timing, a full garbage collection, so that no contender pays for another's garbage.

This machine's speed can change by half within seconds (a shared host), more than the
differences measured. So every round of a limits-core contender is preceded by a round of the
``limits`` strategy with its semantics (the moving window for the sliding log, the fixed
window for the others), and the ratio of each pair of adjacent rounds, measured milliseconds
apart, is recorded (``extra_info["paired"]``); the tables report the median of those. For
figures that do not depend on the machine's speed at all, count instructions:
``python -m benchmarks.instructions``.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from benchmarks.workloads import MEMORY_CONTENDERS, WORKLOADS, Workload, memory_contender

#: Decisions per timed round, and rounds per benchmark.
CALLS = 1000
ROUNDS = int(os.environ.get("LIMITS_CORE_BENCH_ROUNDS", "40"))
REPEATS = int(os.environ.get("LIMITS_CORE_BENCH_REPEATS", "3"))
CASES = [(r, w, n) for r in range(REPEATS) for w in WORKLOADS for n in MEMORY_CONTENDERS]


def paired_peer(name: str) -> str:
    """The peer whose rounds alternate with those of ``name`` (one of ours)."""
    return "limits MovingWindow" if name.endswith("SlidingLog") else "limits FixedWindow"


def _id(value: object) -> str:
    return value.id if isinstance(value, Workload) else str(value)


def _timed_round(
    hit: Callable[[str], object], keys: Iterator[str], spent: list[float]
) -> Callable[[], None]:
    """A round of CALLS decisions, whose duration is also appended to ``spent``."""

    def run() -> None:
        clock = time.perf_counter
        start = clock()
        for _ in range(CALLS):
            hit(next(keys))
        spent.append(clock() - start)

    return run


@pytest.mark.parametrize(("repeat", "workload", "name"), CASES, ids=_id)
def test_memory(benchmark: Any, repeat: int, workload: Workload, name: str) -> None:
    pytest.importorskip("limits")  # every limits-core round is paired with a limits round
    hit, close = memory_contender(name, workload)
    workload.prime(hit)
    ours: list[float] = []
    run = _timed_round(hit, workload.key_cycle(), ours)
    theirs: list[float] = []
    setup, close_peer = None, None
    if name.startswith("limits-core"):
        peer_hit, close_peer = memory_contender(paired_peer(name), workload)
        workload.prime(peer_hit)
        setup = _timed_round(peer_hit, workload.key_cycle(), theirs)
    benchmark.group = f"memory x{CALLS} {workload.id}"
    benchmark.name = name
    gc.collect()
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    close()
    if close_peer is not None:
        close_peer()
        if len(ours) > 1:  # timed (not --benchmark-disable): the first pair is the warm-up
            ratios = [peer / mine for mine, peer in zip(ours[1:], theirs[1:], strict=True)]
            benchmark.extra_info["paired"] = {paired_peer(name): statistics.median(ratios)}
