"""In-memory backend against ``limits`` 5.x ``MemoryStorage``, on the same workloads.

Run: ``pytest benchmarks/test_memory_bench.py -p no:randomly`` (``python -m benchmarks.ratios``
turns its ``--benchmark-json`` into the ratio tables).

Each timed round is ``CALLS`` decisions, one call after another on one thread, and
pytest-benchmark reports the time per decision, so ``ops`` is decisions per second: timing a
thousand calls at once keeps the timer's own cost (comparable to a decision's) out of the
figures. Contenders alternate: the whole list is measured ``REPEATS`` times in turn, so a slow
phase of the machine hits them all, and the ratio tables take each contender's median. Before
each timing, a full garbage collection, so that no contender pays for another's garbage.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

import pytest

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.memory import MemoryBackend
from benchmarks.workloads import WORKLOADS, Workload
from limits_core import Limiter, Rate

OURS: dict[str, Callable[[Rate], Any]] = {
    "FixedWindow": FixedWindow,
    "SlidingLog": SlidingLog,
    "TokenBucket": TokenBucket,
    "SlidingWindowCounter": SlidingWindowCounter,
    "GCRA": GCRA,
    "LeakyBucket": LeakyBucket,
}
PEERS = ["FixedWindow", "MovingWindow"]
CONTENDERS = [f"limits-core {name}" for name in OURS] + [f"limits {name}" for name in PEERS]
#: Decisions per timed round, and rounds per benchmark.
CALLS = 1000
ROUNDS = int(os.environ.get("LIMITS_CORE_BENCH_ROUNDS", "60"))
REPEATS = int(os.environ.get("LIMITS_CORE_BENCH_REPEATS", "3"))
CASES = [(r, w, n) for r in range(REPEATS) for w in WORKLOADS for n in CONTENDERS]


def contender(name: str, workload: Workload) -> tuple[Callable[[str], object], Callable[[], None]]:
    """``(hit(key), close())`` for a contender; skips when its package is missing."""
    rate = Rate(*workload.rate)
    ours, kind = name.split()
    if ours == "limits-core":
        limiter = Limiter(OURS[kind](rate), MemoryBackend())
        return limiter.hit, limiter.close
    limits = pytest.importorskip("limits")
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    storage = MemoryStorage()
    strategy = (FixedWindowRateLimiter if kind == "FixedWindow" else MovingWindowRateLimiter)(
        storage
    )
    item = limits.parse(f"{rate.limit} per {workload.rate[1]} second")
    # Its expiry timer thread would go on running into the next contender's timing.
    return (lambda key: strategy.hit(item, key)), storage.timer.cancel


def _id(value: object) -> str:
    return value.id if isinstance(value, Workload) else str(value)


@pytest.mark.parametrize(("repeat", "workload", "name"), CASES, ids=_id)
def test_memory(benchmark: Any, repeat: int, workload: Workload, name: str) -> None:
    hit, close = contender(name, workload)
    workload.prime(hit)
    keys = workload.key_cycle()
    benchmark.group = f"memory {workload.id}"
    benchmark.name = name
    gc.collect()
    benchmark.pedantic(lambda: hit(next(keys)), iterations=CALLS, rounds=ROUNDS, warmup_rounds=1)
    close()
