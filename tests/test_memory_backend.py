"""Reclamation and max_keys of the in-memory backend."""

from __future__ import annotations

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import BackendError, ConfigurationError, Limiter, ManualClock
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
    (((log, lo, hi), _),) = backend._entries.values()
    assert hi - lo <= 50
    assert len(log.times) <= 2 * 50 + 32
