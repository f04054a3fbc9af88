"""Policies on PostgreSQL: one function call decides every limit, all or nothing, with one row
per limit kept apart from the same limit used alone; concurrent calls never over-admit, never
consume from one limit what another denied, and never deadlock.

The model agreement on the common policy runs in tests/test_policy.py; here a policy of the
other kinds checks that the function dispatches each of them with its own parameters.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.common import Layout, plan
from limits_core import AsyncLimiter, ConfigurationError, Limiter, ManualClock, Policy
from limits_core.decision import Decision
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.postgres_fixtures import sql
from tests.support.programs import KEYS, Op, new_clock, programs, run_async, run_model, run_sync

pytestmark = pytest.mark.postgres

#: The kinds tests/test_policy.py leaves out, on awkward rates.
OTHERS = Policy(
    SlidingWindowCounter("5/7s"),
    GCRA("7/10s", burst=4),
    LeakyBucket("3/7s", capacity=6),
    FixedWindow("3/1.5s"),
)
#: Limits per day on a frozen clock: nothing refills during a hammer.
DAILY = Policy(FixedWindow("50/day"), SlidingLog("80/day"), TokenBucket("60/day"))
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    return sql(
        dsn, f"SELECT key, n, t, log_t, log_n, expires_at FROM limits_core.{table} ORDER BY key"
    )


@fixture_ok
@given(program=programs(OTHERS, max_ops=40, keys=KEYS[:2]))
def test_every_kind_agrees_with_the_model(
    postgres_limiters: MakeLimiter, program: list[Op]
) -> None:
    clock = new_clock()
    # Closed at once: every example would otherwise keep its pool open until the test ends.
    with postgres_limiters(OTHERS, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(OTHERS, program)


@fixture_ok
@given(program=programs(OTHERS, max_ops=40, keys=KEYS[:2]))
async def test_every_kind_agrees_with_the_model_async(
    postgres_async_limiters: MakeAsyncLimiter, program: list[Op]
) -> None:
    clock = new_clock()
    async with postgres_async_limiters(OTHERS, clock) as limiter:
        assert await run_async(limiter, clock, program) == run_model(OTHERS, program)


def test_a_denied_policy_writes_nothing(postgres_dsn: str, pg_table: str) -> None:
    policy = Policy(FixedWindow("3/10s"), SlidingLog("5/1m"), TokenBucket("1/s", burst=4))
    clock = ManualClock()
    limiter = Limiter(policy, PostgresBackend(postgres_dsn, table=pg_table), clock=clock)
    try:
        assert limiter.hit("k", 3).allowed  # the fixed window is now full; the others are not
        before = rows(postgres_dsn, pg_table)
        assert len(before) == 3
        assert all(expires_at > clock.now_us() for *_, expires_at in before)
        clock.advance(2)  # the bucket refills: only the fixed window denies now
        denied = limiter.hit("k")
        assert denied.denied
        assert [d.allowed for d in denied.details] == [False, True, True]
        assert rows(postgres_dsn, pg_table) == before
        limiter.reset("k")
        assert rows(postgres_dsn, pg_table) == []
        assert limiter.hit("k", 3).allowed
    finally:
        limiter.close()


def test_a_policy_key_is_apart_from_the_lone_algorithms(postgres_limiters: MakeLimiter) -> None:
    """As in memory and on Redis: a policy's state is its own."""
    alone = postgres_limiters(DAILY.algorithms[0], prefix="same:")
    both = postgres_limiters(DAILY, prefix="same:")
    assert alone.hit("k", 50).allowed
    assert both.hit("k", 50).allowed
    assert alone.hit("k").denied
    assert both.hit("k").denied
    both.reset("k")
    assert alone.hit("k").denied
    assert both.hit("k").allowed


def test_expired_policy_rows_are_purged(postgres_dsn: str, pg_table: str) -> None:
    clock = ManualClock()
    backend = PostgresBackend(postgres_dsn, table=pg_table)
    limiter = Limiter(OTHERS, backend, clock=clock)
    try:
        assert limiter.hit("k").allowed
        assert len(rows(postgres_dsn, pg_table)) == len(OTHERS.algorithms)
        assert backend.purge_expired(now_us=clock.now_us()) == 0
        later = clock.now_us() + OTHERS.max_state_ttl_us + 2**21  # past expires_at's rounding
        assert backend.purge_expired(now_us=later) == len(OTHERS.algorithms)
    finally:
        limiter.close()


def test_a_policy_of_an_unsupported_limit_is_refused() -> None:
    class Other(FixedWindow):
        pass

    with pytest.raises(ConfigurationError, match="policies"):
        plan(Policy(FixedWindow("1/s"), Other("2/s")), Layout().statements(), "")


def left(peek: Decision) -> list[int]:
    """Each limit's unused capacity, from a peek of cost 1 (an admitted look reports what
    would remain after it)."""
    return [d.remaining + d.allowed for d in peek.details]


def assert_all_or_nothing(
    policy: Policy, results: list[tuple[int, Decision]], peek: Decision
) -> None:
    """On a frozen clock: each limit consumed exactly the admitted cost, and every denied
    request was too big for some limit (even at the end, when the most had been consumed)."""
    admitted = sum(cost for cost, d in results if d.allowed)
    assert left(peek) == [a.limit - admitted for a in policy.algorithms]
    for cost, d in results:
        if d.denied:
            assert any(cost > unused for unused in left(peek)), (cost, d)


async def test_200_tasks_on_a_pool_of_20_admit_exactly_the_model(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, pool_size=20)
    limiter = AsyncLimiter(DAILY, backend, clock=ManualClock())
    try:
        for _ in range(2):  # each round starts on fresh keys: concurrent first inserts
            key = uuid.uuid4().hex
            results = await asyncio.gather(*(limiter.hit(key) for _ in range(200)))
            assert sum(d.allowed for d in results) == 50
            assert sorted(d.remaining for d in results if d.allowed) == list(range(50))
            peek = await limiter.peek(key)
            assert peek.denied
            assert left(peek) == [0, 30, 10]
        key = uuid.uuid4().hex
        costs = [1 + i % 4 for i in range(200)]
        weighted = await asyncio.gather(*(limiter.hit(key, cost) for cost in costs))
        assert_all_or_nothing(
            DAILY, list(zip(costs, weighted, strict=True)), await limiter.peek(key)
        )
    finally:
        await backend.aclose()


def test_threads_admit_exactly_the_model(postgres_dsn: str, pg_table: str) -> None:
    threads, hits = 8, 25
    backend = PostgresBackend(postgres_dsn, table=pg_table, pool_size=threads)
    limiter = Limiter(DAILY, backend, clock=ManualClock())
    results: list[tuple[int, Decision]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(hits):
                cost = rng.randint(1, 4)
                results.append((cost, limiter.hit("hot", cost)))
        except BaseException as exc:
            errors.append(exc)

    try:
        limiter.peek("warm-up")
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert not errors, errors
        assert len(results) == threads * hits
        assert_all_or_nothing(DAILY, results, limiter.peek("hot"))
    finally:
        limiter.close()


async def test_concurrent_hits_and_resets_never_deadlock_nor_split(
    postgres_dsn: str, pg_table: str
) -> None:
    """Resets take the policy's locks too: a hit never waits on a reset that waits on it, and
    after any interleaving every limit has counted the same hits."""
    # Limits in the reverse order of their rows' keys ("p(...):tb..." > "...:sl..." > "...:fw..."):
    # a hit then locks rows in the order opposite to a plain DELETE's.
    policy = Policy(TokenBucket("1000/week"), SlidingLog("1000/hour"), FixedWindow("1000/day"))
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, pool_size=10)
    limiter = AsyncLimiter(policy, backend, clock=ManualClock())
    try:
        for _ in range(2):
            calls = [limiter.reset("k") if i % 10 == 0 else limiter.hit("k") for i in range(300)]
            await asyncio.gather(*calls)
            remaining = {d.remaining for d in (await limiter.peek("k")).details}
            assert len(remaining) == 1
    finally:
        await backend.aclose()
