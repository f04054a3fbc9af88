"""Batched decisions on PostgreSQL: ``decide_many`` / ``adecide_many`` (one statement for many
requests) and the async backend's coalescing of concurrent decisions into such statements.

A batch must decide exactly as the same requests made one by one, in order: checked against
the reference model. Concurrent batches on overlapping keys must neither deadlock nor
over-admit; a batch whose connection dies fails every waiter and counts nothing.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorithms import FixedWindow, SlidingLog
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from limits_core import BackendUnavailable, ConfigurationError, Decision, Policy
from limits_core.algorithm import Algorithm
from tests.support.postgres_fixtures import drop_layout, random_table
from tests.test_postgres_faults import lock_waiter, row_locked
from tests.test_postgres_model import ALGORITHMS, START_US

pytestmark = pytest.mark.postgres

#: ``[(now offset µs, consume, [(key index, cost)])]``: batches in time order.
Program = list[tuple[int, bool, list[tuple[int, int]]]]
#: Keys per program: few enough to repeat within a batch, enough for batches of distinct keys.
KEYS = 5


@st.composite
def batch_programs(draw: st.DrawFn, algorithm: Algorithm) -> Program:
    period = int(getattr(algorithm, "rate").period_us)  # noqa: B009 - all of them have one
    limit = algorithm.limit
    cost = st.one_of(st.just(1), st.integers(1, limit + 2), st.just(10**15))
    request = st.tuples(st.integers(0, KEYS - 1), cost)
    step = st.one_of(st.just(0), st.integers(1, period // 3), st.integers(0, 2 * period))
    program: Program = []
    now = 0
    for _ in range(draw(st.integers(1, 6))):
        now += draw(step)
        consume = draw(st.sampled_from([True, True, False]))
        requests = st.one_of(
            st.lists(request, max_size=12),
            st.lists(request, min_size=2, max_size=KEYS, unique_by=lambda r: r[0]),
        )
        program.append((now, consume, draw(requests)))
    return program


def model_decisions(algorithm: Algorithm, program: Program) -> list[list[Decision]]:
    """The model's decisions for ``program``, request by request in order."""
    states: dict[int, Any] = {}
    out = []
    for offset, consume, requests in program:
        decisions = []
        for key, cost in requests:
            decision, state, _ = algorithm.step(
                states.get(key), START_US + offset, min(cost, algorithm.limit + 1), consume
            )
            if consume and decision.allowed:
                states[key] = state
            decisions.append(decision)
        out.append(decisions)
    return out


@pytest.fixture(scope="module")
def sync_backend(postgres_dsn: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(postgres_dsn, table=random_table())
    backend.create_schema()  # a program may send nothing, and the rows are read
    yield backend
    backend.close()
    drop_layout(postgres_dsn, backend.layout)


@pytest.fixture(scope="module")
def async_backend(postgres_dsn: str) -> Iterator[tuple[asyncio.Runner, AsyncPostgresBackend]]:
    runner = asyncio.Runner()
    backend = AsyncPostgresBackend(postgres_dsn, table=random_table())
    yield runner, backend
    runner.run(backend.aclose())
    runner.close()
    drop_layout(postgres_dsn, backend.layout)


def _rows(dsn: str, backend: PostgresBackend, keys: list[str]) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        cursor = connection.execute(
            f"SELECT n, t, log_t, log_n, expires_at FROM {backend.layout.qualified_table} "
            "WHERE key = ANY(%s) ORDER BY key",
            (keys,),
        )
        return cursor.fetchall()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_decide_many_agrees_with_the_model_request_by_request(
    name: str, sync_backend: PostgresBackend, postgres_dsn: str
) -> None:
    """The decisions are the model's, and the stored rows are those that the same requests
    made one by one with ``decide`` leave."""
    algorithm = ALGORITHMS[name]

    @given(batch_programs(algorithm))
    def check(program: Program) -> None:
        run = uuid.uuid4().hex
        batched = [f"{run}:b{i}" for i in range(KEYS)]
        single = [f"{run}:s{i}" for i in range(KEYS)]
        got = []
        for now, consume, requests in program:
            got.append(
                sync_backend.decide_many(
                    algorithm, [(batched[k], c) for k, c in requests], START_US + now, consume
                )
            )
            for k, cost in requests:
                sync_backend.decide(algorithm, single[k], cost, START_US + now, consume)
        assert got == model_decisions(algorithm, program)
        prefix = f"{algorithm.namespace}:"
        assert _rows(postgres_dsn, sync_backend, [prefix + k for k in batched]) == _rows(
            postgres_dsn, sync_backend, [prefix + k for k in single]
        )

    check()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_adecide_many_agrees_with_the_model_request_by_request(
    name: str, async_backend: tuple[asyncio.Runner, AsyncPostgresBackend]
) -> None:
    algorithm = ALGORITHMS[name]
    runner, backend = async_backend

    @given(batch_programs(algorithm))
    def check(program: Program) -> None:
        keys = [uuid.uuid4().hex for _ in range(KEYS)]
        got = [
            runner.run(
                backend.adecide_many(
                    algorithm, [(keys[k], cost) for k, cost in requests], START_US + now, consume
                )
            )
            for now, consume, requests in program
        ]
        assert got == model_decisions(algorithm, program)

    check()


def test_decisions_come_back_in_request_order_each_key_in_its_order(
    sync_backend: PostgresBackend,
) -> None:
    algorithm = SlidingLog("2/h")
    requests = [("b", 1), ("a", 2), ("b", 1), ("c", 3), ("a", 1), ("b", 1), ("c", 1)]
    got = sync_backend.decide_many(algorithm, requests, START_US, True)
    assert [(d.allowed, d.remaining) for d in got] == [
        (True, 1),  # b
        (True, 0),  # a
        (True, 0),  # b
        (False, 2),  # c: above the limit, never admissible, changes nothing
        (False, 0),  # a
        (False, 0),  # b
        (True, 1),  # c
    ]
    assert got[3].retry_after == float("inf")
    assert sync_backend.decide_many(algorithm, [], START_US, True) == []


async def test_a_batch_of_hits_and_peeks_on_one_key_sees_each_previous_one(
    postgres_dsn: str, pg_table: str
) -> None:
    """Concurrent hits and peeks on one key, coalesced into one batch, in arrival order."""
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    algorithm = FixedWindow("5/h")
    try:
        await backend.adecide(algorithm, "warm-up", 1, None, True)  # starts the backend
        got = await asyncio.gather(
            backend.adecide(algorithm, "k", 1, START_US, True),
            backend.adecide(algorithm, "k", 1, START_US, False),
            backend.adecide(algorithm, "k", 3, START_US, True),
            backend.adecide(algorithm, "k", 1, START_US, True),
            backend.adecide(algorithm, "k", 1, START_US, False),
        )
        assert [(d.allowed, d.remaining) for d in got] == [
            (True, 4),
            (True, 3),
            (True, 1),
            (True, 0),
            (False, 0),
        ]
        assert backend.stats.batches == 2
        assert backend.stats.max_batch_size == 5
    finally:
        await backend.aclose()


async def test_concurrent_batches_on_overlapping_keys_in_any_order_never_deadlock(
    postgres_dsn: str, pg_table: str
) -> None:
    """Batches lock their rows in key order: shuffled overlapping batches, several at once on
    different connections, all complete and admit exactly the limit of every key. Batches of
    distinct keys (the plain statement) run beside batches repeating keys (the function)."""
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, pool_size=8)
    algorithm = FixedWindow("30/h")
    keys = [f"k{i}" for i in range(20)]
    rng = random.Random(7)
    batches = [rng.sample(keys, 15) if i % 2 else rng.choices(keys, k=15) for i in range(64)]
    assert min(sum(batch.count(key) for batch in batches) for key in keys) > 30

    async def batch(chosen: list[str]) -> list[Decision]:
        return await backend.adecide_many(algorithm, [(k, 1) for k in chosen], None, True)

    try:
        decisions = await asyncio.gather(*(batch(chosen) for chosen in batches))
        admitted = sum(d.allowed for batch in decisions for d in batch)
        assert admitted == 20 * 30  # 64 batches x 15 = 960 hits on 20 keys of limit 30
        peeks = await backend.adecide_many(algorithm, [(k, 1) for k in keys], None, False)
        assert all(p.remaining == 0 and not p.allowed for p in peeks)
    finally:
        await backend.aclose()


async def test_a_batch_whose_connection_dies_fails_every_waiter_and_counts_nothing(
    postgres_dsn: str, pg_table: str
) -> None:
    name = f"limits-core-test-{uuid.uuid4().hex[:12]}"
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=2, server_settings={"application_name": name}
    )
    algorithm = FixedWindow("5/h")
    try:
        await backend.adecide(algorithm, "locked", 1, None, True)
        with row_locked(postgres_dsn, pg_table, f"{algorithm.namespace}:locked"):
            # One coalesced batch: a fresh key, then the locked one, then another fresh key.
            waiters = [
                asyncio.create_task(backend.adecide(algorithm, key, 1, None, True))
                for key in ("a", "locked", "z", "a")
            ]
            pid = await asyncio.to_thread(lock_waiter, postgres_dsn, name)
            await asyncio.to_thread(_terminate, postgres_dsn, pid)
            results = await asyncio.wait_for(
                asyncio.gather(*waiters, return_exceptions=True), timeout=20
            )
        assert all(isinstance(r, BackendUnavailable) for r in results), results
        # Never retried: the whole batch was rolled back, "a" included though it came first.
        peeks = await backend.adecide_many(
            algorithm, [("a", 1), ("locked", 1), ("z", 1)], None, False
        )
        assert [p.remaining for p in peeks] == [4, 3, 4]
        assert backend.stats.batches == 1  # the first hit's: a failed batch is not recorded
    finally:
        await backend.aclose()


def test_sync_decide_many_whose_connection_dies_is_unavailable_and_counts_nothing(
    postgres_dsn: str, pg_table: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = f"limits-core-test-{uuid.uuid4().hex[:12]}"
    backend = PostgresBackend(
        postgres_dsn, table=pg_table, pool_size=2, server_settings={"application_name": name}
    )
    algorithm = FixedWindow("5/h")
    try:
        backend.decide(algorithm, "locked", 1, None, True)
        with (
            ThreadPoolExecutor(1) as executor,
            row_locked(postgres_dsn, pg_table, f"{algorithm.namespace}:locked"),
        ):
            in_flight = executor.submit(
                backend.decide_many, algorithm, [("a", 1), ("locked", 1), ("z", 1)], None, True
            )
            _terminate(postgres_dsn, lock_waiter(postgres_dsn, name))
            with pytest.raises(BackendUnavailable):
                in_flight.result(timeout=20)
        peeks = backend.decide_many(algorithm, [("a", 1), ("locked", 1), ("z", 1)], None, False)
        assert [p.remaining for p in peeks] == [4, 3, 4]
    finally:
        backend.close()


def _terminate(dsn: str, pid: int) -> None:
    from tests.support.postgres_fixtures import sql

    sql(dsn, "SELECT pg_terminate_backend(%s)", pid)


async def test_cancelling_one_waiter_leaves_the_batch_to_the_others(
    postgres_dsn: str, pg_table: str
) -> None:
    name = f"limits-core-test-{uuid.uuid4().hex[:12]}"
    backend = AsyncPostgresBackend(
        postgres_dsn, table=pg_table, pool_size=2, server_settings={"application_name": name}
    )
    algorithm = FixedWindow("5/h")
    try:
        await backend.adecide(algorithm, "k", 1, None, True)
        with row_locked(postgres_dsn, pg_table, f"{algorithm.namespace}:k"):
            waiters = [
                asyncio.create_task(backend.adecide(algorithm, "k", 1, None, True))
                for _ in range(3)
            ]
            await asyncio.to_thread(lock_waiter, postgres_dsn, name)
            waiters[1].cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiters[1]
        first, third = await asyncio.wait_for(asyncio.gather(waiters[0], waiters[2]), 20)
        # The batch went on: the cancelled hit was in it, between the other two.
        assert (first.remaining, third.remaining) == (3, 1)
    finally:
        await backend.aclose()


async def test_a_waiter_cancelled_before_its_batch_is_sent_is_left_out(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    algorithm = FixedWindow("5/h")
    try:
        await backend.adecide(algorithm, "warm-up", 1, None, True)  # starts the backend
        waiters = [
            asyncio.create_task(backend.adecide(algorithm, "k", 1, None, True)) for _ in range(3)
        ]
        await asyncio.sleep(0)  # the tasks have queued their requests; no sender ran yet
        waiters[0].cancel()
        got = await asyncio.gather(waiters[1], waiters[2])
        assert [d.remaining for d in got] == [4, 3]
        assert waiters[0].cancelled()
    finally:
        await backend.aclose()


async def test_stats_count_batches_and_sizes_up_to_the_cap(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, max_batch=8)
    algorithm = FixedWindow("1000/h")
    try:
        assert backend.stats.batches == 0
        await backend.adecide(algorithm, "alone", 1, None, True)  # idle: sent at once, alone
        assert (backend.stats.batches, backend.stats.max_batch_size) == (1, 1)
        await asyncio.gather(
            *(backend.adecide(algorithm, f"k{i % 7}", 1, None, True) for i in range(50))
        )
        stats = backend.stats
        assert stats.decisions == 51
        assert stats.max_batch_size == 8  # capped: 50 concurrent hits make batches of 8
        assert 7 <= stats.batches <= 51
        assert stats.mean_batch_size == pytest.approx(51 / stats.batches)
        assert 0 < stats.latency_p50 <= stats.latency_p99
        assert 0 <= stats.queue_wait_p50 <= stats.queue_wait_p99 <= stats.latency_p99
    finally:
        await backend.aclose()


async def test_without_coalescing_every_decision_is_its_own_statement(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, coalesce=False)
    algorithm = FixedWindow("10/h")
    try:
        got = await asyncio.gather(
            *(backend.adecide(algorithm, "k", 1, None, True) for _ in range(12))
        )
        assert sum(d.allowed for d in got) == 10
        assert backend.stats.batches == 0
        assert backend.stats.decisions == 0
    finally:
        await backend.aclose()


def test_decide_many_with_a_policy_decides_one_request_at_a_time(
    sync_backend: PostgresBackend,
) -> None:
    policy = Policy(FixedWindow("2/h"), FixedWindow("5/d"))
    try:
        expected: Any = sync_backend.decide(policy, "p", 1, START_US, False)
    except ConfigurationError as exc:
        expected = type(exc)
    try:
        got: Any = sync_backend.decide_many(policy, [("p", 1)], START_US, False)[0]
    except ConfigurationError as exc:
        got = type(exc)
    assert got == expected


@pytest.mark.parametrize("options", [{"coalesce": "yes"}, {"max_batch": 0}])
def test_coalescing_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AsyncPostgresBackend("postgresql://127.0.0.1/db", **options)
