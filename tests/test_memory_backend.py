"""Reclamation and max_keys of the in-memory backend."""

from __future__ import annotations

import asyncio

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import (
    AsyncLimiter,
    BackendError,
    ConfigurationError,
    Decision,
    Limiter,
    ManualClock,
)
from limits_core.algorithm import Algorithm


@pytest.mark.parametrize(
    "algorithm", [FixedWindow("5/10s"), SlidingLog("5/10s"), TokenBucket("5/10s", burst=7)]
)
def test_expired_state_is_reclaimed_as_traffic_goes_on(algorithm: Algorithm) -> None:
    clock = ManualClock()
    backend = MemoryBackend()
    limiter = Limiter(algorithm, backend, clock=clock)
    for i in range(100):
        limiter.hit(f"gone-{i}")
    assert len(backend) == 100
    clock.advance(algorithm.max_state_ttl_us / 1_000_000)
    for i in range(150):  # each write inspects two entries of the ring
        limiter.hit(f"live-{i}")
    assert len(backend) == 150


def test_explicit_sweep_reclaims_everything_expired() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    limiter = Limiter(SlidingLog("5/10s"), backend)
    for i in range(50):
        limiter.hit(f"k{i}")
    clock.advance(9.999999)
    assert backend.sweep() == 0
    clock.advance(0.000001)
    assert backend.sweep() == 50
    assert len(backend) == 0


def test_a_hot_key_stays_one_entry() -> None:
    clock = ManualClock()
    backend = MemoryBackend()
    limiter = Limiter(SlidingLog("1000/s"), backend, clock=clock)
    for _ in range(5000):
        limiter.hit("hot")
        clock.advance(0.0003)
    assert len(backend) == 1


def test_peeks_and_denials_store_nothing() -> None:
    backend = MemoryBackend()
    limiter = Limiter(FixedWindow("1/s"), backend)
    limiter.peek("a")
    limiter.hit("b", 2)
    assert len(backend) == 0


def test_max_keys_evicts_the_longest_uninspected_entry() -> None:
    clock = ManualClock()
    backend = MemoryBackend(max_keys=10)
    limiter = Limiter(FixedWindow("1/minute"), backend, clock=clock)
    for i in range(25):
        assert limiter.hit(f"k{i}").allowed
        assert len(backend) <= 10
    assert len(backend) == 10
    assert backend.evictions == 15


def test_max_keys_reclaims_expired_entries_before_evicting() -> None:
    clock = ManualClock()
    backend = MemoryBackend(max_keys=10)
    limiter = Limiter(FixedWindow("1/minute"), backend, clock=clock)
    for i in range(10):
        limiter.hit(f"old{i}")
    clock.advance(60)
    for i in range(10):
        limiter.hit(f"new{i}")
    assert backend.evictions == 0
    assert len(backend) == 10


def test_max_keys_error_keeps_existing_state() -> None:
    clock = ManualClock()
    backend = MemoryBackend(max_keys=3, when_full="error")
    limiter = Limiter(FixedWindow("1/minute"), backend, clock=clock)
    for i in range(3):
        limiter.hit(f"k{i}")
    with pytest.raises(BackendError, match="full"):
        limiter.hit("newcomer")
    # Existing keys keep their counts; a full store never fails open for them.
    assert not limiter.hit("k0").allowed
    assert len(backend) == 3


@pytest.mark.parametrize("options", [{"max_keys": 0}, {"max_keys": True}, {"when_full": "drop"}])
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        MemoryBackend(**options)  # type: ignore[arg-type]


def test_sliding_log_state_is_bounded_by_the_limit() -> None:
    clock = ManualClock()
    backend = MemoryBackend()
    limiter = Limiter(SlidingLog("50/s"), backend, clock=clock)
    for _ in range(2000):
        limiter.hit("k", 3)
        clock.advance(0.001)
    ((((times, _, lo, hi), _, _),),) = (
        table.entries.values() for table in backend._tables.values()
    )
    assert hi - lo <= 50
    assert len(times) <= 2 * 50 + 32


def test_max_keys_counts_every_algorithm_and_reclaims_across_them() -> None:
    clock = ManualClock()
    backend = MemoryBackend(max_keys=10)
    minute = Limiter(FixedWindow("1/minute"), backend, clock=clock)
    second = Limiter(FixedWindow("1/second"), backend, clock=clock)
    for i in range(6):
        minute.hit(f"m{i}")
        second.hit(f"s{i}")
    assert len(backend) == 10
    assert backend.evictions == 2  # the store was full for the last two of the second limit
    clock.advance(1)  # the per-second windows are over, the per-minute ones are not
    for i in range(4):
        assert minute.hit(f"new{i}").allowed
    assert backend.evictions == 2  # room came from the other algorithm's expired keys
    # Of the per-minute keys, only the one evicted earlier is admitted again.
    assert sum(minute.hit(f"m{i}").allowed for i in range(6)) == 1


def test_eviction_takes_another_algorithms_key_when_its_own_has_none() -> None:
    clock = ManualClock()
    backend = MemoryBackend(max_keys=3)
    Limiter(FixedWindow("1/minute"), backend, clock=clock).hit_many([("a", 1), ("b", 1), ("c", 1)])
    assert Limiter(TokenBucket("1/minute"), backend, clock=clock).hit("d").allowed
    assert len(backend) == 3
    assert backend.evictions == 1


def test_a_subclass_overriding_decide_is_called_by_both_facades() -> None:
    calls: list[str] = []

    class Counting(MemoryBackend):
        def decide(
            self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
        ) -> Decision:
            calls.append(key)
            return super().decide(algorithm, key, cost, now_us, consume)

    backend = Counting()
    Limiter(FixedWindow("5/s"), backend).hit("sync")
    asyncio.run(AsyncLimiter(FixedWindow("5/s"), backend).hit("async"))
    assert calls == ["sync", "async"]
