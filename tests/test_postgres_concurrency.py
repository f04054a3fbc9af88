"""Many callers on one key, through the PostgreSQL backends: exactly ``limit`` are admitted.

The server's clock decides (no ``clock=``), with limits per day so no window ends and no token
refills during a run: any lost update or double insert would admit more than the limit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

import pytest

from backends.postgres import AsyncPostgresBackend, PostgresBackend
from limits_core import AsyncLimiter, ManualClock
from tests.support.postgres_workers import hammer, hammer_algorithm

pytestmark = pytest.mark.postgres

KINDS = [
    "fixed_window",
    "sliding_log",
    "token_bucket",
    "sliding_window_counter",
    "gcra",
    "leaky_bucket",
]


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
@pytest.mark.parametrize("name", KINDS)
async def test_200_tasks_on_a_pool_of_20_admit_exactly_the_limit(
    postgres_dsn: str, pg_table: str, name: str, coalesce: bool
) -> None:
    limit = 50
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=20, coalesce=coalesce, max_batch=16
    )
    # A frozen clock: with the server's clock a refilling algorithm may legitimately report
    # the same remaining twice as time passes between hits, and only atomicity is tested here.
    limiter = AsyncLimiter(hammer_algorithm(name, limit), backend, clock=ManualClock())
    try:
        for _ in range(3):  # each round starts on a fresh key: concurrent first inserts
            key = uuid.uuid4().hex
            results = await asyncio.gather(*(limiter.hit(key) for _ in range(200)))
            assert sum(d.allowed for d in results) == limit
            assert sorted(d.remaining for d in results if d.allowed) == list(range(limit))
            # A denial reports the state that denied it (the full limit), never an older one.
            assert {d.remaining for d in results if d.denied} == {0}
            assert (await limiter.peek(key)).remaining == 0
        if coalesce:  # the hits did go out in batches, several of them at once
            assert backend.stats.max_batch_size > 1
            assert backend.stats.batches < 3 * 200 + 3
    finally:
        await backend.aclose()


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
async def test_weighted_concurrent_hits_fill_the_limit_without_passing_it(
    postgres_dsn: str, pg_table: str, coalesce: bool
) -> None:
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=20, coalesce=coalesce, max_batch=16
    )
    try:
        for name in KINDS:
            limiter = AsyncLimiter(hammer_algorithm(name, 300), backend)
            results = await asyncio.gather(*(limiter.hit("w", 1 + i % 5) for i in range(200)))
            admitted = sum(1 + i % 5 for i, d in enumerate(results) if d.allowed)
            assert 300 - 5 < admitted <= 300
            assert (await limiter.peek("w")).remaining == 300 - admitted
    finally:
        await backend.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("name", KINDS)
def test_4_processes_of_8_threads_admit_exactly_the_limit(
    postgres_dsn: str, pg_table: str, name: str
) -> None:
    processes, threads, hits, limit = 4, 8, 12, 150
    PostgresBackend(postgres_dsn, table=pg_table).create_schema()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=hammer,
            args=(postgres_dsn, pg_table, name, limit, "hot", threads, hits, barrier, results),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    admitted = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(isinstance(count, int) for count in admitted), admitted
    assert processes * threads * hits > 2 * limit
    assert sum(admitted) == limit
