"""Faults on the shared server: unreachable servers, a full pool, connections terminated while
idle and in the middle of a statement. Only this test's own connections (found by their
``application_name``) are ever terminated."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import pytest

from algorithms import FixedWindow
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from limits_core import AsyncLimiter, BackendUnavailable, Decision, Limiter
from tests.support.pg_cluster import free_port
from tests.support.postgres_fixtures import aeventually, eventually, sql

pytestmark = pytest.mark.faults

T = TypeVar("T")


def _app_name() -> str:
    return f"limits-core-test-{uuid.uuid4().hex[:12]}"


def terminate(dsn: str, application_name: str) -> int:
    """Terminate every connection of ``application_name``; return how many."""
    rows = sql(
        dsn,
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        application_name,
    )
    return int(rows[0][0])


def lock_waiter(dsn: str, application_name: str, timeout: float = 20.0) -> int:
    """The pid of the connection of ``application_name`` waiting on a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sql(
            dsn,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            application_name,
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.02)
    raise AssertionError("no connection started waiting on the lock")


@contextmanager
def row_locked(dsn: str, table: str, key: str) -> Iterator[None]:
    """Hold the row lock of ``key`` in an open transaction of another connection."""
    import psycopg

    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            f'SELECT 1 FROM limits_core."{table}" WHERE key = %s FOR UPDATE', (key,)
        ).fetchall()
        assert rows, f"no row for {key!r}"
        try:
            yield
        finally:
            connection.rollback()


def _stored_key(limiter: Limiter | AsyncLimiter, key: str) -> str:
    return f"{limiter.algorithm.namespace}:{key}"


# -- unreachable servers ------------------------------------------------------------------------


def test_sync_unreachable_server_is_unavailable_with_the_password_masked() -> None:
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/db"
    backend = PostgresBackend(dsn, pool_timeout=1)
    with pytest.raises(BackendUnavailable) as caught:
        Limiter(FixedWindow("1/s"), backend).hit("k")
    assert "s3cret-pw" not in str(caught.value)
    assert "app:***@127.0.0.1" in str(caught.value)
    assert "s3cret-pw" not in repr(backend)
    backend.close()


async def test_async_unreachable_server_is_unavailable_with_the_password_masked() -> None:
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/db"
    backend = AsyncPostgresBackend(dsn, pool_timeout=1)
    with pytest.raises(BackendUnavailable) as caught:
        await AsyncLimiter(FixedWindow("1/s"), backend).hit("k")
    assert "s3cret-pw" not in str(caught.value)
    assert "app:***@127.0.0.1" in str(caught.value)
    await backend.aclose()


@pytest.mark.postgres
async def test_an_unknown_database_is_unavailable_with_the_password_masked(
    postgres_dsn: str,
) -> None:
    # Trust authentication accepts any password; the database is what fails.
    dsn = "postgresql://root:s3cret-pw@127.0.0.1:5432/no_such_database_here"
    sync = PostgresBackend(dsn, pool_timeout=2)
    with pytest.raises(BackendUnavailable, match="no_such_database_here") as caught:
        Limiter(FixedWindow("1/s"), sync).hit("k")
    assert "s3cret-pw" not in str(caught.value)
    backend = AsyncPostgresBackend(dsn, pool_timeout=2)
    with pytest.raises(BackendUnavailable, match="no_such_database_here") as acaught:
        await AsyncLimiter(FixedWindow("1/s"), backend).hit("k")
    assert "s3cret-pw" not in str(acaught.value)
    await backend.aclose()


# -- an exhausted pool --------------------------------------------------------------------------


@pytest.mark.postgres
async def test_async_exhausted_pool_waits_pool_timeout_then_is_unavailable(
    postgres_dsn: str, pg_table: str
) -> None:
    name = _app_name()
    backend = AsyncPostgresBackend(
        postgres_dsn,
        table=pg_table,
        pool_size=1,
        pool_timeout=0.3,
        server_settings={"application_name": name},
    )
    limiter = AsyncLimiter(FixedWindow("5/h"), backend)
    assert (await limiter.hit("busy")).allowed
    with row_locked(postgres_dsn, pg_table, _stored_key(limiter, "busy")):
        blocked = asyncio.create_task(limiter.hit("busy"))  # holds the only connection
        await asyncio.to_thread(lock_waiter, postgres_dsn, name)
        with pytest.raises(BackendUnavailable):
            await limiter.hit("other")
    assert (await blocked).remaining == 3
    assert (await limiter.hit("other")).allowed
    await backend.aclose()


@pytest.mark.postgres
def test_sync_exhausted_pool_waits_pool_timeout_then_is_unavailable(
    postgres_dsn: str, pg_table: str
) -> None:
    name = _app_name()
    backend = PostgresBackend(
        postgres_dsn,
        table=pg_table,
        pool_size=1,
        pool_timeout=0.3,
        server_settings={"application_name": name},
    )
    limiter = Limiter(FixedWindow("5/h"), backend)
    assert limiter.hit("busy").allowed
    with ThreadPoolExecutor(1) as executor:
        with row_locked(postgres_dsn, pg_table, _stored_key(limiter, "busy")):
            blocked = executor.submit(limiter.hit, "busy")
            lock_waiter(postgres_dsn, name)
            with pytest.raises(BackendUnavailable):
                limiter.hit("other")
        assert blocked.result(timeout=20).remaining == 3
    assert limiter.hit("other").allowed
    backend.close()


@pytest.mark.postgres
async def test_async_cancelled_decisions_give_their_connection_back(
    postgres_dsn: str, pg_table: str
) -> None:
    """A caller's timeout cancels a decision blocked in the database, and one waiting for the
    pool: neither keeps a connection or a place."""
    name = _app_name()
    backend = AsyncPostgresBackend(
        postgres_dsn,
        table=pg_table,
        pool_size=1,
        pool_timeout=5,
        server_settings={"application_name": name},
    )
    limiter = AsyncLimiter(FixedWindow("5/h"), backend)
    assert (await limiter.hit("k")).allowed
    with row_locked(postgres_dsn, pg_table, _stored_key(limiter, "k")):
        blocked = asyncio.create_task(limiter.hit("k"))
        await asyncio.to_thread(lock_waiter, postgres_dsn, name)
        waiting = asyncio.create_task(limiter.hit("other"))
        await asyncio.sleep(0.05)
        for task in (waiting, blocked):
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    # The only connection is free again and the cancelled hits were not counted.
    assert (await asyncio.wait_for(limiter.hit("k"), timeout=10)).remaining == 3
    assert (await asyncio.wait_for(limiter.hit("other"), timeout=10)).remaining == 4
    await backend.aclose()


# -- a connection dying in the middle of a statement --------------------------------------------


@pytest.mark.postgres
async def test_async_connection_killed_mid_statement_raises_and_is_not_retried(
    postgres_dsn: str, pg_table: str
) -> None:
    name = _app_name()
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=2, server_settings={"application_name": name}
    )
    limiter = AsyncLimiter(FixedWindow("5/h"), backend)
    assert (await limiter.hit("k")).remaining == 4
    with row_locked(postgres_dsn, pg_table, _stored_key(limiter, "k")):
        in_flight = asyncio.create_task(limiter.hit("k"))
        pid = await asyncio.to_thread(lock_waiter, postgres_dsn, name)
        sql(postgres_dsn, "SELECT pg_terminate_backend(%s)", pid)
        # Had the backend retried the statement it would now be blocked on the lock again,
        # then succeed once the lock is released; it must fail instead.
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(in_flight, timeout=20)
    # The killed hit was rolled back: one hit is counted, the next one leaves three.
    assert (await limiter.peek("k")).remaining == 3
    assert (await limiter.hit("k")).remaining == 3
    await backend.aclose()


@pytest.mark.postgres
def test_sync_connection_killed_mid_statement_raises_and_is_not_retried(
    postgres_dsn: str, pg_table: str
) -> None:
    name = _app_name()
    backend = PostgresBackend(
        postgres_dsn, table=pg_table, pool_size=2, server_settings={"application_name": name}
    )
    limiter = Limiter(FixedWindow("5/h"), backend)
    assert limiter.hit("k").remaining == 4
    with (
        ThreadPoolExecutor(1) as executor,
        row_locked(postgres_dsn, pg_table, _stored_key(limiter, "k")),
    ):
        in_flight = executor.submit(limiter.hit, "k")
        sql(postgres_dsn, "SELECT pg_terminate_backend(%s)", lock_waiter(postgres_dsn, name))
        with pytest.raises(BackendUnavailable):
            in_flight.result(timeout=20)
    assert limiter.peek("k").remaining == 3
    assert limiter.hit("k").remaining == 3
    backend.close()


# -- connections terminated while a workload runs ------------------------------------------------


def _consumed(limit: int, peek: Decision) -> int:
    """What was counted, from a peek of cost 1 (whose remaining is after that cost)."""
    return limit - peek.remaining - peek.allowed


@pytest.mark.postgres
async def test_async_backend_recovers_from_terminated_connections(
    postgres_dsn: str, pg_table: str
) -> None:
    name, limit = _app_name(), 400
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=10, server_settings={"application_name": name}
    )
    limiter = AsyncLimiter(FixedWindow(f"{limit}/day"), backend)
    admitted = failures = 0
    running = True

    async def worker() -> None:
        nonlocal admitted, failures
        while running:
            try:
                decision = await limiter.hit("hot")
            except BackendUnavailable:
                failures += 1
            else:  # read the counter only after the await: `x += await f()` would lose counts
                admitted += decision.allowed

    workers = [asyncio.create_task(worker()) for _ in range(40)]
    terminated = 0
    for _ in range(6):
        await asyncio.sleep(0.1)
        terminated += await asyncio.to_thread(terminate, postgres_dsn, name)
    running = False
    await asyncio.gather(*workers)
    assert terminated > 0
    consumed = _consumed(limit, await aeventually(lambda: limiter.peek("hot")))
    # Every admission was counted; a failed call may or may not have been (never retried).
    assert admitted <= consumed <= min(limit, admitted + failures)
    assert (await aeventually(lambda: limiter.hit("fresh"))).allowed  # working again
    await backend.aclose()


@pytest.mark.postgres
def test_sync_backend_recovers_from_terminated_connections(
    postgres_dsn: str, pg_table: str
) -> None:
    name, limit = _app_name(), 400
    backend = PostgresBackend(
        postgres_dsn,
        table=pg_table,
        pool_size=8,
        pool_timeout=2,
        server_settings={"application_name": name},
    )
    limiter = Limiter(FixedWindow(f"{limit}/day"), backend)
    counts = {"admitted": 0, "failures": 0}
    lock = threading.Lock()
    running = threading.Event()
    running.set()

    def worker() -> None:
        while running.is_set():
            try:
                allowed = limiter.hit("hot").allowed
            except BackendUnavailable:
                key, value = "failures", 1
            else:
                key, value = "admitted", int(allowed)
            with lock:
                counts[key] += value

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    terminated = 0
    for _ in range(6):
        time.sleep(0.1)
        terminated += terminate(postgres_dsn, name)
    running.clear()
    for thread in threads:
        thread.join(timeout=30)
    assert terminated > 0
    consumed = _consumed(limit, eventually(lambda: limiter.peek("hot")))
    assert counts["admitted"] <= consumed <= min(limit, counts["admitted"] + counts["failures"])
    assert eventually(lambda: limiter.hit("fresh")).allowed
    backend.close()


# -- the connections the sync backend keeps between decisions -----------------------------------


def _connections(dsn: str, application_name: str) -> list[int]:
    rows = sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
        application_name,
    )
    return [int(pid) for (pid,) in rows]


@pytest.mark.postgres
def test_sync_threads_waiting_for_the_pool_get_the_kept_connections(
    postgres_dsn: str, pg_table: str
) -> None:
    """More threads than connections: a thread done with a connection hands it to a thread
    waiting for the pool rather than keeping it idle, so no wait reaches pool_timeout."""
    backend = PostgresBackend(postgres_dsn, table=pg_table, pool_size=2, pool_timeout=1)
    limiter = Limiter(FixedWindow("100000/h"), backend)
    threads, hits = 8, 60
    with ThreadPoolExecutor(threads) as executor:
        results = list(
            executor.map(
                lambda i: [limiter.hit(f"k{i % 2}").allowed for _ in range(hits)], range(threads)
            )
        )
    assert all(all(allowed) for allowed in results)
    assert limiter.peek("k0").remaining == 100000 - threads * hits // 2 - 1
    backend.close()


@pytest.mark.postgres
def test_sync_close_closes_the_kept_connections(postgres_dsn: str, pg_table: str) -> None:
    name = _app_name()
    backend = PostgresBackend(
        postgres_dsn, table=pg_table, pool_size=4, server_settings={"application_name": name}
    )
    limiter = Limiter(FixedWindow("100000/h"), backend)
    with ThreadPoolExecutor(4) as executor:
        list(executor.map(lambda i: [limiter.hit(f"k{i}") for _ in range(30)], range(4)))
    assert _connections(postgres_dsn, name)
    backend.close()
    deadline = time.monotonic() + 10  # the server notices the disconnections a bit later
    while _connections(postgres_dsn, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(postgres_dsn, name) == []


@pytest.mark.postgres
def test_sync_a_terminated_kept_connection_is_not_reused(postgres_dsn: str, pg_table: str) -> None:
    name = _app_name()
    backend = PostgresBackend(
        postgres_dsn,
        table=pg_table,
        pool_size=2,
        pool_timeout=2,
        server_settings={"application_name": name},
    )
    limiter = Limiter(FixedWindow("100/h"), backend)
    assert limiter.hit("k").allowed
    killed = set(_connections(postgres_dsn, name))
    assert terminate(postgres_dsn, name) == len(killed) > 0
    failures = 0
    for _ in range(4):
        try:
            assert limiter.hit("k").allowed
        except BackendUnavailable:
            failures += 1
    assert failures <= 1  # the kept connection's death is found once, then it is replaced
    assert not killed & set(_connections(postgres_dsn, name))
    backend.close()
