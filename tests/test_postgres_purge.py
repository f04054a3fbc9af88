"""``purge_expired()`` and the background purge: every expired row goes, no live row does, and
no decision changes (the model-agreement programs also purge between decisions)."""

from __future__ import annotations

import asyncio
import time

import pytest

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.async_backend import PURGE_TASK_NAME
from backends.postgres.common import Layout
from limits_core import AsyncLimiter, ConfigurationError, Limiter, ManualClock
from limits_core.algorithm import Algorithm
from tests.support.postgres_fixtures import drop_layout, random_table, sql

pytestmark = pytest.mark.postgres

START = 1_700_000_000.0
ALGORITHMS: list[Algorithm] = [
    FixedWindow("3/10s"),
    SlidingLog("3/10s"),
    TokenBucket("3/10s", burst=5),
    SlidingWindowCounter("3/10s"),
    GCRA("3/10s", burst=5),
    LeakyBucket("3/10s", capacity=5),
]


def _expired_and_live(dsn: str, table: str, now_us: int) -> tuple[int, int]:
    rows = sql(
        dsn,
        "SELECT count(*) FILTER (WHERE expires_at <= %s), count(*) FILTER (WHERE expires_at > %s) "
        f"FROM {Layout(table=table).qualified_table}",
        now_us,
        now_us,
    )
    return rows[0][0], rows[0][1]


def _fill(limiters: list[Limiter], clock: ManualClock, keys: int) -> None:
    """``keys`` keys per algorithm, hit at times spread over 40 seconds."""
    for i in range(keys):
        clock.set(START + (i % 40))
        for limiter in limiters:
            limiter.hit(f"user:{i}", 1 + i % 3)


def test_purge_deletes_every_expired_row_and_only_those(postgres_dsn: str, pg_table: str) -> None:
    clock = ManualClock(START)
    backend = PostgresBackend(postgres_dsn, table=pg_table)
    limiters = [Limiter(algorithm, backend, clock=clock) for algorithm in ALGORITHMS]
    _fill(limiters, clock, 200)
    now_us = int((START + 25) * 1_000_000)
    expired, live = _expired_and_live(postgres_dsn, pg_table, now_us)
    assert expired > 100
    assert live > 100
    assert backend.purge_expired(batch_size=17, now_us=now_us) == expired
    assert _expired_and_live(postgres_dsn, pg_table, now_us) == (0, live)
    assert backend.purge_expired(batch_size=17, now_us=now_us) == 0
    # By the server's clock (years later) everything has expired.
    assert backend.purge_expired() == live
    assert sql(postgres_dsn, f"SELECT count(*) FROM {backend.layout.qualified_table}") == [(0,)]
    backend.close()


def test_purge_changes_no_later_decision(postgres_dsn: str, pg_table: str) -> None:
    """Rows purged at time P affect no decision made at P or later: the same hits on a
    purged and an unpurged backend decide the same."""
    clock = ManualClock(START)
    purged = PostgresBackend(postgres_dsn, table=pg_table)
    kept = PostgresBackend(postgres_dsn, table=random_table())
    algorithms = [
        FixedWindow("3/2s"),
        SlidingLog("3/2s"),
        TokenBucket("3/2s", burst=4),
        SlidingWindowCounter("3/2s"),
        GCRA("3/2s", burst=4),
        LeakyBucket("3/2s", capacity=4),
    ]
    pairs = [(Limiter(a, purged, clock=clock), Limiter(a, kept, clock=clock)) for a in algorithms]
    deleted = 0
    try:
        for step in range(60):
            clock.set(START + step * 0.7)
            if step % 7 == 0:
                deleted += purged.purge_expired(batch_size=5, now_us=clock.now_us())
            for one, other in pairs:
                for key in ("a", "bb", "ccc"):
                    if (step // (2 + len(key))) % 2:  # each key idles now and then
                        continue
                    cost = 1 + (step + len(key)) % 3
                    assert one.hit(key, cost) == other.hit(key, cost)
                    assert one.peek(key) == other.peek(key)
        assert deleted > 0
    finally:
        purged.close()
        kept.close()
        drop_layout(postgres_dsn, kept.layout)


@pytest.mark.parametrize("batch_size", [0, -1, True, 1.5, "10"])
def test_batch_size_is_validated(batch_size: object) -> None:
    backend = PostgresBackend("postgresql://h/db")
    with pytest.raises(ConfigurationError):
        backend.purge_expired(batch_size=batch_size)  # type: ignore[arg-type]


async def test_async_purge_deletes_expired_rows(postgres_dsn: str, pg_table: str) -> None:
    clock = ManualClock(START)
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    limiters = [AsyncLimiter(algorithm, backend, clock=clock) for algorithm in ALGORITHMS]
    for i in range(100):
        clock.set(START + (i % 40))
        for limiter in limiters:
            await limiter.hit(f"user:{i}")
    now_us = int((START + 25) * 1_000_000)
    expired, live = _expired_and_live(postgres_dsn, pg_table, now_us)
    assert await backend.purge_expired(batch_size=7, now_us=now_us) == expired > 0
    assert _expired_and_live(postgres_dsn, pg_table, now_us) == (0, live)
    await backend.aclose()


def _purge_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == PURGE_TASK_NAME]


async def test_background_purge_runs_until_aclose(postgres_dsn: str, pg_table: str) -> None:
    clock = ManualClock(START)  # long ago by the server's clock, which the purge uses
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, purge_interval=0.05, purge_batch_size=10
    )
    limiter = AsyncLimiter(FixedWindow("5/s"), backend, clock=clock)
    for i in range(50):
        await limiter.hit(f"user:{i}")
    assert len(_purge_tasks()) == 1
    deadline = time.monotonic() + 30
    while sql(postgres_dsn, f"SELECT count(*) FROM {backend.layout.qualified_table}") != [(0,)]:
        assert time.monotonic() < deadline, "the background purge did not run"
        await asyncio.sleep(0.05)
    await backend.aclose()
    assert _purge_tasks() == []


def test_purge_interval_is_validated() -> None:
    for interval in (0, -1, True, "1"):
        with pytest.raises(ConfigurationError):
            AsyncPostgresBackend("postgresql://h/db", purge_interval=interval)  # type: ignore[arg-type]
