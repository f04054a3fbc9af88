"""A PostgreSQL server this test owns is restarted and crashed under the backends: they raise
BackendUnavailable while it is down and recover when it is back. A logged table keeps its
counters across both; an UNLOGGED table loses them in a crash (the documented fail-open)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from limits_core import AsyncLimiter, BackendUnavailable, Limiter, ManualClock
from tests.support.pg_cluster import PrivateCluster
from tests.support.postgres_fixtures import aeventually, eventually, random_table

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.faults]

T = TypeVar("T")
ALGORITHMS = [FixedWindow("10/h"), SlidingLog("10/h"), TokenBucket("10/h")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    server.start()
    yield server
    server.destroy()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_sync_backend_recovers_after_a_restart(cluster: PrivateCluster, mode: str) -> None:
    clock = ManualClock()
    backends = {
        unlogged: PostgresBackend(
            cluster.dsn, table=random_table(), unlogged=unlogged, pool_size=4, pool_timeout=1
        )
        for unlogged in (False, True)
    }
    limiters = {
        (unlogged, a.kind): Limiter(a, backend, clock=clock)
        for unlogged, backend in backends.items()
        for a in ALGORITHMS
    }
    for limiter in limiters.values():
        for _ in range(3):
            assert limiter.hit("k").allowed
    cluster.stop(mode)
    for limiter in limiters.values():
        with pytest.raises(BackendUnavailable):
            limiter.hit("k")
    cluster.start()
    for (unlogged, _), limiter in limiters.items():
        remaining = eventually(lambda limiter=limiter: limiter.hit("k")).remaining
        lost = unlogged and mode == "immediate"  # a crash empties UNLOGGED tables
        assert remaining == (9 if lost else 6)
    for backend in backends.values():
        backend.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_async_backend_recovers_after_a_restart(cluster: PrivateCluster, mode: str) -> None:
    clock = ManualClock()
    backends = {
        unlogged: AsyncPostgresBackend(
            cluster.dsn, table=random_table(), unlogged=unlogged, pool_size=4, pool_timeout=1
        )
        for unlogged in (False, True)
    }
    limiters: dict[tuple[bool, str], Any] = {
        (unlogged, a.kind): AsyncLimiter(a, backend, clock=clock)
        for unlogged, backend in backends.items()
        for a in ALGORITHMS
    }
    for limiter in limiters.values():
        for _ in range(3):
            assert (await limiter.hit("k")).allowed
    await asyncio.to_thread(cluster.stop, mode)
    for limiter in limiters.values():
        with pytest.raises(BackendUnavailable):
            await limiter.hit("k")
    await asyncio.to_thread(cluster.start)
    for (unlogged, _), limiter in limiters.items():
        decision = await aeventually(lambda limiter=limiter: limiter.hit("k"))
        lost = unlogged and mode == "immediate"
        assert decision.remaining == (9 if lost else 6)
    for backend in backends.values():
        await backend.aclose()
