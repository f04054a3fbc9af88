"""Redis factories for the backend matrix: ``redis_limiters`` / ``redis_async_limiters`` on the
shared server, ``redis_cluster_limiters`` / ``redis_cluster_async_limiters`` on a 3-master
cluster that this module starts for the session. The async factories coalesce concurrent
decisions (the default); their ``*_uncoalesced`` twins send each decision on its own.

Each ``make()`` gets a fresh prefix under the test's random prefix, so Hypothesis examples
start from empty state; every key under the test's prefix is deleted afterwards.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from backends.redis import AsyncRedisBackend, RedisBackend
from limits_core import AsyncLimiter, Clock, Limiter
from limits_core.algorithm import Algorithm
from tests.support.redis_servers import RedisCluster
from tests.support.servers import require

MakeLimiter = Callable[..., Limiter]
MakeAsyncLimiter = Callable[..., AsyncLimiter]


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """The shared Redis server (``--redis-url``); skips locally, fails in CI when absent."""
    return require(str(request.config.getoption("--redis-url")), 6379, "Redis")


@pytest.fixture
def redis_prefix() -> str:
    """A random key prefix for one test."""
    return f"test-{uuid.uuid4().hex[:12]}:"


def delete_prefix(client: Any, prefix: str) -> None:
    for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
        client.delete(key)


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    """A sync client on the shared server; deletes the test's keys afterwards."""
    client = redis.Redis.from_url(redis_url, retry=no_retry(), socket_timeout=5)
    yield client
    delete_prefix(client, redis_prefix)
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster on free loopback ports, for the whole session."""
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("redis-cluster")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_client(
    redis_cluster: RedisCluster, redis_prefix: str
) -> Iterator[redis.cluster.RedisCluster]:
    client = redis.cluster.RedisCluster(
        host="127.0.0.1", port=redis_cluster.nodes[0].port, retry=no_retry(), socket_timeout=5
    )
    yield client
    delete_prefix(client, redis_prefix)
    client.close()


def _prefixes(base: str) -> Iterator[str]:
    return (f"{base}{n}:" for n in itertools.count())


@pytest.fixture
def redis_limiters(redis_client: redis.Redis, redis_prefix: str) -> MakeLimiter:
    """``make(algorithm, clock=None, **options)`` on the shared server through ``client=``."""
    prefixes = _prefixes(redis_prefix)

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> Limiter:
        backend = RedisBackend(client=redis_client, prefix=next(prefixes), **options)
        return Limiter(algorithm, backend, clock=clock)

    return make


@pytest.fixture
def redis_async_limiters(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> MakeAsyncLimiter:
    """``make(algorithm, clock=None, **options)`` with an owned client built from the URL (one
    per limiter, so each lives in the event loop that uses it)."""
    prefixes = _prefixes(redis_prefix)

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> AsyncLimiter:
        backend = AsyncRedisBackend(redis_url, prefix=next(prefixes), **options)
        return AsyncLimiter(algorithm, backend, clock=clock)

    return make


def _uncoalesced(make: MakeAsyncLimiter) -> MakeAsyncLimiter:
    def make_uncoalesced(
        algorithm: Algorithm, clock: Clock | None = None, **options: Any
    ) -> AsyncLimiter:
        return make(algorithm, clock, coalesce=False, **options)

    return make_uncoalesced


@pytest.fixture
def redis_async_limiters_uncoalesced(redis_async_limiters: MakeAsyncLimiter) -> MakeAsyncLimiter:
    """``redis_async_limiters`` with ``coalesce=False``: one round trip per decision."""
    return _uncoalesced(redis_async_limiters)


@pytest.fixture
def redis_cluster_limiters(
    redis_cluster_client: redis.cluster.RedisCluster, redis_prefix: str
) -> MakeLimiter:
    """Sync limiters on the cluster, through a caller's ``RedisCluster`` client."""
    prefixes = _prefixes(redis_prefix)

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> Limiter:
        backend = RedisBackend(client=redis_cluster_client, prefix=next(prefixes), **options)
        return Limiter(algorithm, backend, clock=clock)

    return make


@pytest.fixture
def redis_cluster_async_limiters(
    redis_cluster: RedisCluster,
    redis_cluster_client: redis.cluster.RedisCluster,
    redis_prefix: str,
) -> MakeAsyncLimiter:
    """Async limiters on the cluster, through the ``redis+cluster://`` URL form."""
    prefixes = _prefixes(redis_prefix)

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> AsyncLimiter:
        backend = AsyncRedisBackend(redis_cluster.url, prefix=next(prefixes), **options)
        return AsyncLimiter(algorithm, backend, clock=clock)

    return make


@pytest.fixture
def redis_cluster_async_limiters_uncoalesced(
    redis_cluster_async_limiters: MakeAsyncLimiter,
) -> MakeAsyncLimiter:
    """``redis_cluster_async_limiters`` with ``coalesce=False``."""
    return _uncoalesced(redis_cluster_async_limiters)
