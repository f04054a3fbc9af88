"""Backend options: PgBouncer settings tested against plain PostgreSQL, pools given by the
caller, session settings, validation, closing."""

from __future__ import annotations

from typing import Any

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from limits_core import (
    AsyncLimiter,
    BackendError,
    ConfigurationError,
    Limiter,
    ManualClock,
)
from limits_core.algorithm import Algorithm
from tests.support.programs import START_US

ALGORITHMS: list[Algorithm] = [FixedWindow("3/s"), SlidingLog("3/s"), TokenBucket("3/s")]
PREPARED = "SELECT count(*) FROM pg_prepared_statements"


def _expected(algorithm: Algorithm, times: list[int]) -> list[bool]:
    state, out = None, []
    for now in times:
        decision, new_state, _ = algorithm.step(state, now, 1)
        out.append(decision.allowed)
        if decision.allowed:
            state = new_state
    return out


TIMES = [START_US + dt for dt in (0, 1, 2, 3, 400_000, 999_999, 1_000_000, 1_000_001, 2_500_000)]


def _drive(limiter: Limiter, clock: ManualClock) -> list[bool]:
    out = []
    for now in TIMES:
        clock.set(now / 1_000_000)
        out.append(limiter.hit("k").allowed)
    return out


async def _adrive(limiter: AsyncLimiter, clock: ManualClock) -> list[bool]:
    out = []
    for now in TIMES:
        clock.set(now / 1_000_000)
        out.append((await limiter.hit("k")).allowed)
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("cache", [0, 100])
async def test_statement_cache_size_0_runs_without_prepared_statements(
    postgres_dsn: str, pg_table: str, cache: int
) -> None:
    """``statement_cache_size=0`` is what PgBouncer's transaction pooling needs: no named
    statement outlives its call, and decisions are the same."""
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=1, statement_cache_size=cache
    )
    for algorithm in ALGORITHMS:
        clock = ManualClock()
        limiter = AsyncLimiter(algorithm, backend, clock=clock)
        assert await _adrive(limiter, clock) == _expected(algorithm, TIMES)
    prepared = await backend.pool.fetchval(PREPARED)  # the pool's only connection
    assert (prepared == 0) if cache == 0 else (prepared >= len(ALGORITHMS))
    await backend.aclose()


@pytest.mark.postgres
@pytest.mark.parametrize("threshold", [None, 5])
def test_prepare_threshold_none_runs_without_prepared_statements(
    postgres_dsn: str, pg_table: str, threshold: int | None
) -> None:
    backend = PostgresBackend(
        postgres_dsn, table=pg_table, pool_size=1, prepare_threshold=threshold
    )
    for algorithm in ALGORITHMS:
        clock = ManualClock()
        assert _drive(Limiter(algorithm, backend, clock=clock), clock) == _expected(
            algorithm, TIMES
        )
    with backend.pool.connection() as connection:
        prepared = connection.execute(PREPARED).fetchone()[0]
    assert (prepared == 0) if threshold is None else (prepared >= len(ALGORITHMS))
    backend.close()


@pytest.mark.postgres
async def test_async_backend_on_a_callers_pool_leaves_it_open(
    postgres_dsn: str, pg_table: str
) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        backend = AsyncPostgresBackend(pool=pool, table=pg_table)
        limiter = AsyncLimiter(FixedWindow("1/h"), backend)
        assert (await limiter.hit("k")).allowed
        assert not (await limiter.hit("k")).allowed
        await limiter.aclose()
        assert await pool.fetchval("SELECT 1") == 1
        assert "the given pool" in repr(backend)
    finally:
        await pool.close()


@pytest.mark.postgres
def test_sync_backend_on_a_callers_pool_leaves_it_open(postgres_dsn: str, pg_table: str) -> None:
    from psycopg_pool import ConnectionPool

    # Without autocommit: the backend commits each decision itself.
    with ConnectionPool(postgres_dsn, min_size=1, max_size=2, open=True) as pool:
        backend = PostgresBackend(pool=pool, table=pg_table)
        with Limiter(TokenBucket("1/h"), backend) as limiter:
            assert limiter.hit("k").allowed
            assert not limiter.hit("k").allowed
        assert not pool.closed
        # Committed: another connection sees the state.
        with Limiter(TokenBucket("1/h"), PostgresBackend(postgres_dsn, table=pg_table)) as other:
            assert not other.hit("k").allowed


@pytest.mark.postgres
async def test_server_settings_apply_to_every_connection(postgres_dsn: str, pg_table: str) -> None:
    settings = {"synchronous_commit": "off", "application_name": "limits core test"}
    sync = PostgresBackend(postgres_dsn, table=pg_table, server_settings=settings)
    with Limiter(FixedWindow("1/s"), sync) as limiter:
        assert limiter.hit("k").allowed
        with sync.pool.connection() as connection:
            shown = connection.execute(
                "SELECT current_setting('synchronous_commit'), current_setting('application_name')"
            ).fetchone()
    assert shown == ("off", "limits core test")
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, server_settings=settings)
    async with AsyncLimiter(FixedWindow("1/s"), backend) as alimiter:
        assert (await alimiter.hit("j")).allowed
        row = await backend.pool.fetchrow(
            "SELECT current_setting('synchronous_commit'), current_setting('application_name')"
        )
    assert tuple(row) == ("off", "limits core test")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dsn": "postgresql://h/db", "pool": object()},
        {"dsn": 42},
        {"dsn": "postgresql://h/db", "prefix": 3},
        {"dsn": "postgresql://h/db", "pool_size": 0},
        {"dsn": "postgresql://h/db", "pool_size": True},
        {"dsn": "postgresql://h/db", "pool_timeout": 0},
        {"dsn": "postgresql://h/db", "pool_timeout": float("nan")},
        {"dsn": "postgresql://h/db", "unlogged": "yes"},
    ],
)
@pytest.mark.parametrize("kind", [PostgresBackend, AsyncPostgresBackend])
def test_options_are_validated(kind: Any, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        kind(**options)


def test_driver_specific_options_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        AsyncPostgresBackend("postgresql://h/db", statement_cache_size=-1)
    with pytest.raises(ConfigurationError):
        AsyncPostgresBackend("postgresql://h/db", command_timeout=0)
    with pytest.raises(ConfigurationError):
        PostgresBackend("postgresql://h/db", prepare_threshold=-1)
    with pytest.raises(ConfigurationError):
        PostgresBackend("postgresql://h/db", server_settings={"bad name": "x"})


@pytest.mark.postgres
async def test_closed_backends_refuse_work(postgres_dsn: str, pg_table: str) -> None:
    sync = PostgresBackend(postgres_dsn, table=pg_table)
    limiter = Limiter(FixedWindow("1/s"), sync)
    assert limiter.hit("k").allowed
    sync.close()
    sync.close()
    with pytest.raises(BackendError, match="closed"):
        limiter.hit("k")
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    alimiter = AsyncLimiter(FixedWindow("1/s"), backend)
    assert (await alimiter.hit("j")).allowed
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(BackendError, match="closed"):
        await alimiter.hit("j")
