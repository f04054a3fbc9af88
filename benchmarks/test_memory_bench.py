"""In-memory backend against ``limits`` 5.x ``MemoryStorage``, on the same workloads.

Run: ``pytest benchmarks/test_memory_bench.py --benchmark-group-by=group``.
Each benchmark times one decision per call, so ``ops`` is decisions per second on one thread.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.memory import MemoryBackend
from benchmarks.workloads import WORKLOADS, Workload
from limits_core import Limiter, Rate

OURS: dict[str, Callable[[Rate], object]] = {
    "FixedWindow": FixedWindow,
    "SlidingLog": SlidingLog,
    "TokenBucket": TokenBucket,
    "SlidingWindowCounter": SlidingWindowCounter,
    "GCRA": GCRA,
    "LeakyBucket": LeakyBucket,
}


def _run(
    benchmark: pytest.FixtureRequest, workload: Workload, hit: Callable[[str], object]
) -> None:
    workload.prime(hit)
    keys = workload.key_cycle()
    benchmark.group = f"memory {workload.id}"  # type: ignore[attr-defined]
    benchmark(lambda: hit(next(keys)))  # type: ignore[operator]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.id)
@pytest.mark.parametrize("name", sorted(OURS))
def test_limits_core(benchmark: pytest.FixtureRequest, workload: Workload, name: str) -> None:
    benchmark.name = f"limits-core {name}"  # type: ignore[attr-defined]
    limiter = Limiter(OURS[name](Rate(*workload.rate)), MemoryBackend())  # type: ignore[arg-type]
    _run(benchmark, workload, limiter.hit)


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.id)
@pytest.mark.parametrize("strategy", ["FixedWindow", "MovingWindow"])
def test_limits_peer(benchmark: pytest.FixtureRequest, workload: Workload, strategy: str) -> None:
    limits = pytest.importorskip("limits")
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    benchmark.name = f"limits {strategy}"  # type: ignore[attr-defined]
    kind = FixedWindowRateLimiter if strategy == "FixedWindow" else MovingWindowRateLimiter
    limiter = kind(MemoryStorage())
    item = limits.parse(f"{workload.rate[0]} per {workload.rate[1]} second")
    _run(benchmark, workload, lambda key: limiter.hit(item, key))
