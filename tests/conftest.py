"""Shared fixtures: server addresses, Hypothesis profiles and the backend matrix.

Every test that takes ``make_limiter`` or ``make_async_limiter`` runs on each backend in
``SYNC_BACKENDS`` / ``ASYNC_BACKENDS``; a backend's fixture module registers its factories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.memory import MemoryBackend
from limits_core import AsyncLimiter, Clock, Limiter
from limits_core.algorithm import Algorithm

pytest_plugins: list[str] = ["tests.support.redis_fixtures", "tests.support.postgres_fixtures"]

ALGORITHMS: dict[str, Callable[[], Algorithm]] = {
    "fixed_window": lambda: FixedWindow("5/10s"),
    "sliding_log": lambda: SlidingLog("5/10s"),
    "token_bucket": lambda: TokenBucket("5/10s", burst=7),
    # Awkward rates on purpose: a fractional emission interval and drain rate.
    "sliding_window_counter": lambda: SlidingWindowCounter("5/7s"),
    "gcra": lambda: GCRA("7/10s", burst=4),
    "leaky_bucket": lambda: LeakyBucket("3/7s", capacity=6),
}


@pytest.fixture(params=sorted(ALGORITHMS))
def algorithm(request: pytest.FixtureRequest) -> Algorithm:
    """Each algorithm, with small limits that tests can exhaust quickly."""
    return ALGORITHMS[request.param]()


MakeLimiter = Callable[..., Limiter]
MakeAsyncLimiter = Callable[..., AsyncLimiter]

#: Fixture names of sync backend factories: each returns ``make(algorithm, clock) -> Limiter``.
SYNC_BACKENDS = [
    pytest.param("memory_limiters", id="memory"),
    pytest.param("redis_limiters", id="redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster_limiters", id="redis-cluster", marks=pytest.mark.redis),
    pytest.param("postgres_limiters", id="postgres", marks=pytest.mark.postgres),
]
#: Fixture names of async backend factories: ``make(algorithm, clock) -> AsyncLimiter``.
ASYNC_BACKENDS = [
    pytest.param("memory_async_limiters", id="memory"),
    pytest.param("redis_async_limiters", id="redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster_async_limiters", id="redis-cluster", marks=pytest.mark.redis),
    pytest.param("postgres_async_limiters", id="postgres", marks=pytest.mark.postgres),
    pytest.param(
        "postgres_async_limiters_uncoalesced",
        id="postgres-uncoalesced",
        marks=pytest.mark.postgres,
    ),
    # AsyncRedisBackend coalesces by default; these send one script per round trip.
    pytest.param(
        "redis_async_limiters_uncoalesced", id="redis-uncoalesced", marks=pytest.mark.redis
    ),
    pytest.param(
        "redis_cluster_async_limiters_uncoalesced",
        id="redis-cluster-uncoalesced",
        marks=pytest.mark.redis,
    ),
]


@pytest.fixture
def memory_limiters() -> Iterator[MakeLimiter]:
    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> Limiter:
        return Limiter(algorithm, MemoryBackend(**options), clock=clock)

    return make


@pytest.fixture
def memory_async_limiters() -> Iterator[MakeAsyncLimiter]:
    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> AsyncLimiter:
        return AsyncLimiter(algorithm, MemoryBackend(**options), clock=clock)

    return make


@pytest.fixture(params=SYNC_BACKENDS)
def make_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    """``make(algorithm, clock=None) -> Limiter`` on each sync backend, isolated per test."""
    factory: MakeLimiter = request.getfixturevalue(request.param)
    return factory


@pytest.fixture(params=ASYNC_BACKENDS)
def make_async_limiter(request: pytest.FixtureRequest) -> MakeAsyncLimiter:
    """``make(algorithm, clock=None) -> AsyncLimiter`` on each async backend."""
    factory: MakeAsyncLimiter = request.getfixturevalue(request.param)
    return factory
