"""Many processes, threads and tasks on one key, on Redis and on Redis Cluster, with the server's
clock: exactly ``limit`` admitted, and every key left behind has a bounded TTL."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from backends.redis import AsyncRedisBackend
from limits_core import AsyncLimiter
from tests.support.redis_workers import HOT_ALGORITHMS, hammer, hot_algorithm

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROCESSES, THREADS, PER_THREAD = 4, 8, 10
TASKS = 500


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessPoolExecutor]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        yield pool


@pytest.fixture(params=["redis", "redis-cluster"])
def target(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(URL, sync client for inspection) of the shared server or the test cluster."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_client")
    cluster = request.getfixturevalue("redis_cluster")
    return cluster.url, request.getfixturevalue("redis_cluster_client")


def assert_ttls_bounded(client: Any, prefix: str, name: str) -> None:
    bound_ms = -(-hot_algorithm(name).max_state_ttl_us // 1000)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    assert keys
    for key in keys:
        assert 0 < client.pttl(key) <= bound_ms, key


@pytest.mark.parametrize("name", sorted(HOT_ALGORITHMS))
def test_processes_and_threads_admit_exactly_the_limit(
    processes: ProcessPoolExecutor, target: tuple[str, Any], redis_prefix: str, name: str
) -> None:
    url, client = target
    futures = [
        processes.submit(hammer, url, redis_prefix, name, THREADS, PER_THREAD)
        for _ in range(PROCESSES)
    ]
    admitted = sum(future.result(timeout=120) for future in futures)
    limit = hot_algorithm(name).limit
    assert 2 * limit < PROCESSES * THREADS * PER_THREAD
    assert admitted == limit
    assert_ttls_bounded(client, redis_prefix, name)


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
@pytest.mark.parametrize("name", sorted(HOT_ALGORITHMS))
async def test_tasks_admit_exactly_the_limit(
    target: tuple[str, Any], redis_prefix: str, name: str, coalesce: bool
) -> None:
    url, client = target
    algorithm = hot_algorithm(name)
    backend = AsyncRedisBackend(url, prefix=redis_prefix, coalesce=coalesce)
    async with AsyncLimiter(algorithm, backend) as limiter:
        decisions = await asyncio.gather(*(limiter.hit("}hot{") for _ in range(TASKS)))
        assert 2 * algorithm.limit < TASKS
        assert sum(d.allowed for d in decisions) == algorithm.limit
        assert (await limiter.peek("}hot{")).remaining == 0
    assert_ttls_bounded(client, redis_prefix, name)
