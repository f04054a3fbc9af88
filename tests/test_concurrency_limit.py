"""Concurrency: the pure model, the lease facades, and every backend against the model."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import Concurrency, FixedWindow
from backends.memory import MemoryBackend
from limits_core import (
    ConfigurationError,
    Lease,
    Limiter,
    ManualClock,
    Policy,
    RateLimitExceeded,
)
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.lease_programs import (
    lease_programs,
    run_lease_async,
    run_lease_model,
    run_lease_sync,
)
from tests.support.programs import KEYS, START_US, new_clock

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

T0 = START_US
SECOND = 1_000_000

#: Small limits and lease lifetimes that programs exhaust and outlive quickly.
SHAPES = [Concurrency(1, lease_ttl=5.0), Concurrency(3, lease_ttl=10.0), Concurrency(4, 0.25)]


# -- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "ttl"),
    [
        (0, 1.0),
        (-1, 1.0),
        (True, 1.0),
        (2.0, 1.0),
        ("3", 1.0),
        (10**13, 1.0),
        (1, 0),
        (1, -1.0),
        (1, math.inf),
        (1, math.nan),
        (1, True),
        (1, "5"),
        (1, 1e-07),
    ],
)
def test_bad_parameters_are_configuration_errors(limit: Any, ttl: Any) -> None:
    with pytest.raises(ConfigurationError):
        Concurrency(limit, lease_ttl=ttl)


def test_parameters_and_identity() -> None:
    algorithm = Concurrency(3, lease_ttl=1.5)
    assert (algorithm.limit, algorithm.lease_ttl, algorithm.lease_ttl_us) == (3, 1.5, 1_500_000)
    assert algorithm.kind == "concurrency"
    assert algorithm.max_state_ttl_us == 1_500_000
    assert algorithm == Concurrency(3, 1.5) != Concurrency(3, 2)
    assert algorithm.namespace != Concurrency(4, 1.5).namespace
    assert repr(algorithm) == "Concurrency(3, lease_ttl=1.5)"
    assert Concurrency(2).lease_ttl == 60.0


def test_acquire_until_full_then_wait_for_the_earliest_expiry() -> None:
    algorithm = Concurrency(3, lease_ttl=10.0)
    decision, state, expires = algorithm.acquire(None, T0, 1, 2)
    assert (decision.allowed, decision.remaining, decision.reset_after) == (True, 1, 10.0)
    assert expires == T0 + 10 * SECOND
    decision, state, expires = algorithm.acquire(state, T0 + 4 * SECOND, 2, 1)
    assert (decision.allowed, decision.remaining, decision.reset_after) == (True, 0, 10.0)
    assert expires == T0 + 14 * SECOND
    # Full: a lease of 1 fits once the first lease (cost 2) expires, at 10 s.
    denied, same, _ = algorithm.acquire(state, T0 + 5 * SECOND, 3, 1)
    assert not denied.allowed
    assert same is state
    assert (denied.remaining, denied.retry_after, denied.reset_after) == (0, 5.0, 9.0)
    # A lease of 3 needs both to expire: at 14 s.
    assert algorithm.acquire(state, T0 + 5 * SECOND, 3, 3)[0].retry_after == 9.0
    never = algorithm.acquire(state, T0 + 5 * SECOND, 3, 4)[0]
    assert not never.allowed
    assert never.never_allowed
    assert never.remaining == 0
    # Expired leases hold nothing: at 10 s the first one is gone.
    decision, state, _ = algorithm.acquire(state, T0 + 10 * SECOND, 4, 2)
    assert decision.allowed
    assert decision.remaining == 0
    assert [entry[1] for entry in state] == [2, 4]


def test_release_is_idempotent_and_unknown_leases_are_no_ops() -> None:
    algorithm = Concurrency(2, lease_ttl=10.0)
    _, state, _ = algorithm.acquire(None, T0, 7, 1)
    _, state, _ = algorithm.acquire(state, T0, 8, 1)
    assert algorithm.release(state, T0, 99) == (False, state, 0)
    released, after, expires = algorithm.release(state, T0 + 1, 7)
    assert released
    assert after == ((T0 + 10 * SECOND, 8, 1),)
    assert expires == T0 + 10 * SECOND
    assert algorithm.release(after, T0 + 2, 7) == (False, after, 0)
    assert algorithm.release(after, T0 + 3, 8) == (True, None, 0)
    # An expired lease was already given back by the clock.
    assert algorithm.release(after, T0 + 10 * SECOND, 8)[0] is False


def test_step_only_peeks() -> None:
    algorithm = Concurrency(2, lease_ttl=10.0)
    _, state, _ = algorithm.acquire(None, T0, 1, 1)
    peeked, unchanged, _ = algorithm.step(state, T0 + 1, 1, consume=False)
    assert unchanged is state
    assert peeked == algorithm.acquire(state, T0 + 1, 2, 1)[0]
    with pytest.raises(ConfigurationError, match="acquire"):
        algorithm.step(state, T0, 1)


def test_a_clock_that_goes_back_grants_nothing() -> None:
    algorithm = Concurrency(1, lease_ttl=10.0)
    _, state, _ = algorithm.acquire(None, T0, 1, 1)
    for now in (T0 - 5 * SECOND, T0, T0 + 10 * SECOND - 1):
        assert not algorithm.acquire(state, now, 2, 1)[0].allowed


@given(program=st.data())
def test_in_flight_never_exceeds_the_limit(program: st.DataObject) -> None:
    algorithm = program.draw(st.sampled_from(SHAPES))
    # run_lease_model asserts the invariant after every operation.
    run_lease_model(algorithm, program.draw(lease_programs(algorithm, max_ops=60)))


# -- the facades ------------------------------------------------------------------------------


def test_hits_are_refused_and_peeks_allowed(make_limiter: MakeLimiter) -> None:
    with make_limiter(Concurrency(2, 10.0), new_clock()) as limiter:
        with pytest.raises(ConfigurationError, match="acquire"):
            limiter.hit("k")
        assert limiter.peek("k", 2).allowed
        assert not limiter.peek("k", 3).allowed


async def test_async_hits_are_refused(make_async_limiter: MakeAsyncLimiter) -> None:
    async with make_async_limiter(Concurrency(2, 10.0), new_clock()) as limiter:
        with pytest.raises(ConfigurationError, match="acquire"):
            await limiter.hit("k")
        assert (await limiter.peek("k", 2)).remaining == 0


def test_leases_belong_to_concurrency_limits() -> None:
    with pytest.raises(ConfigurationError, match="acquire and release"):
        Limiter(FixedWindow("2/s"), MemoryBackend()).acquire("k")
    with pytest.raises(ConfigurationError, match="policy"):
        Policy(Concurrency(2), FixedWindow("2/s"))
    with pytest.raises(ConfigurationError, match="policy"):
        Limiter([FixedWindow("2/s"), Concurrency(2)], MemoryBackend())
    limiter = Limiter(Concurrency(2), MemoryBackend())
    with pytest.raises(ConfigurationError, match="not a Lease"):
        limiter.release("lease")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        limiter.acquire("", 1)
    with pytest.raises(ConfigurationError):
        limiter.acquire("k", 0)


def test_a_denied_lease_holds_nothing() -> None:
    limiter = Limiter(Concurrency(1, 10.0), MemoryBackend(), clock=ManualClock())
    held = limiter.acquire("k")
    denied = limiter.acquire("k")
    assert isinstance(denied, Lease)
    assert not denied.allowed
    assert denied.decision.retry_after == 10
    assert limiter.release(denied) is False
    assert not limiter.acquire("k").allowed  # releasing the denied lease freed nothing
    assert limiter.release(held) is True
    assert limiter.release(held) is False
    assert limiter.acquire("k").allowed


def test_the_lease_block_releases_even_on_errors(make_limiter: MakeLimiter) -> None:
    with make_limiter(Concurrency(1, 10.0), new_clock()) as limiter:
        with limiter.lease("k") as lease:
            assert lease.allowed
            assert lease.key == "k"
            assert lease.cost == 1
            with pytest.raises(RateLimitExceeded) as denied, limiter.lease("k"):
                pytest.fail("a full limit granted a lease")
            assert denied.value.decision.retry_after == 10.0
        with pytest.raises(ZeroDivisionError), limiter.lease("k"):
            1 / 0  # noqa: B018
        assert limiter.peek("k").remaining == 0  # a peek of 1 would leave 0: nothing held
        assert limiter.release(lease) is False


async def test_the_async_lease_block_releases_even_on_errors(
    make_async_limiter: MakeAsyncLimiter,
) -> None:
    async with make_async_limiter(Concurrency(1, 10.0), new_clock()) as limiter:
        async with limiter.lease("k") as lease:
            assert lease.allowed
            with pytest.raises(RateLimitExceeded):
                async with limiter.lease("k"):
                    pytest.fail("a full limit granted a lease")
        with pytest.raises(ZeroDivisionError):
            async with limiter.lease("k"):
                1 / 0  # noqa: B018
        assert (await limiter.acquire("k")).allowed


# -- every backend against the model ----------------------------------------------------------


@st.composite
def shape_and_program(draw: st.DrawFn) -> tuple[Concurrency, list[Any]]:
    algorithm = draw(st.sampled_from(SHAPES))
    return algorithm, draw(lease_programs(algorithm, keys=KEYS))


@fixture_ok
@given(case=shape_and_program())
def test_sync_leases_agree_with_the_model(
    make_limiter: MakeLimiter, case: tuple[Concurrency, list[Any]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        assert run_lease_sync(limiter, clock, program) == run_lease_model(algorithm, program)


@fixture_ok
@given(case=shape_and_program())
async def test_async_leases_agree_with_the_model(
    make_async_limiter: MakeAsyncLimiter, case: tuple[Concurrency, list[Any]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    async with make_async_limiter(algorithm, clock) as limiter:
        outcomes = await run_lease_async(limiter, clock, program)
        assert outcomes == run_lease_model(algorithm, program)


def test_a_leaked_lease_is_reclaimed_after_its_ttl(make_limiter: MakeLimiter) -> None:
    clock = new_clock()
    with make_limiter(Concurrency(2, lease_ttl=3.0), clock) as limiter:
        leaked = [limiter.acquire("k"), limiter.acquire("k")]
        assert all(lease.allowed for lease in leaked)
        clock.advance(3.0 - 1e-6)
        assert not limiter.acquire("k").allowed
        clock.advance(1e-6)
        assert limiter.acquire("k", 2).allowed
        assert [limiter.release(lease) for lease in leaked] == [False, False]


def test_the_stores_own_clock_reclaims_leaked_leases(make_limiter: MakeLimiter) -> None:
    with make_limiter(Concurrency(1, lease_ttl=0.2)) as limiter:
        assert limiter.acquire("k").allowed
        denied = limiter.acquire("k")
        assert not denied.allowed
        assert 0 < denied.decision.retry_after <= 0.2
        time.sleep(0.25)
        assert limiter.acquire("k").allowed


# -- hammers: exactly what the model allows ---------------------------------------------------

THREADS, TASKS = 16, 200


def test_threads_are_granted_exactly_the_limit(make_limiter: MakeLimiter) -> None:
    algorithm = Concurrency(37, lease_ttl=600.0)
    with make_limiter(algorithm) as limiter:
        barrier = threading.Barrier(THREADS)
        granted = [0] * THREADS

        def worker(i: int) -> None:
            barrier.wait()
            for _ in range(6):
                granted[i] += limiter.acquire("hot").allowed

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 2 * algorithm.limit < THREADS * 6
        assert sum(granted) == algorithm.limit
        assert limiter.peek("hot").remaining == 0


def test_threads_never_hold_more_than_the_limit(make_limiter: MakeLimiter) -> None:
    """Acquire, hold, release, in a loop: at no instant do more holders than the limit run."""
    algorithm = Concurrency(5, lease_ttl=600.0)
    with make_limiter(algorithm) as limiter:
        holding, most, lock = [0], [0], threading.Lock()
        barrier = threading.Barrier(THREADS)

        def worker() -> None:
            barrier.wait()
            for _ in range(8):
                lease = limiter.acquire("hot")
                if lease.allowed:
                    with lock:
                        holding[0] += 1
                        most[0] = max(most[0], holding[0])
                    time.sleep(0.001)
                    with lock:
                        holding[0] -= 1
                    assert limiter.release(lease)

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 <= most[0] <= algorithm.limit
        # Everything was given back.
        assert limiter.peek("hot", algorithm.limit).allowed


async def test_tasks_are_granted_exactly_the_limit(make_async_limiter: MakeAsyncLimiter) -> None:
    algorithm = Concurrency(37, lease_ttl=600.0)
    async with make_async_limiter(algorithm) as limiter:
        leases = await asyncio.gather(*(limiter.acquire("}hot{") for _ in range(TASKS)))
        assert 2 * algorithm.limit < TASKS
        assert sum(lease.allowed for lease in leases) == algorithm.limit
        assert sorted(lease.decision.remaining for lease in leases if lease.allowed) == list(
            range(algorithm.limit)
        )
        # Releasing every lease at once (the denied ones included) frees exactly the limit.
        released = await asyncio.gather(*(limiter.release(lease) for lease in leases))
        assert sum(released) == algorithm.limit
        assert (await limiter.peek("}hot{", algorithm.limit)).allowed


async def test_tasks_never_hold_more_than_the_limit(make_async_limiter: MakeAsyncLimiter) -> None:
    algorithm = Concurrency(5, lease_ttl=600.0)
    async with make_async_limiter(algorithm) as limiter:
        holding, most, entered = 0, 0, 0

        async def worker() -> None:
            nonlocal holding, most, entered
            try:
                async with limiter.lease("hot"):
                    holding += 1
                    entered += 1
                    most = max(most, holding)
                    await asyncio.sleep(0.005)
                    holding -= 1
            except RateLimitExceeded:
                pass

        await asyncio.gather(*(worker() for _ in range(TASKS)))
        assert entered >= algorithm.limit
        assert most <= algorithm.limit
        assert (await limiter.peek("hot", algorithm.limit)).allowed


async def test_weighted_tasks_fill_the_limit_without_passing_it(
    make_async_limiter: MakeAsyncLimiter,
) -> None:
    algorithm = Concurrency(100, lease_ttl=600.0)
    async with make_async_limiter(algorithm) as limiter:
        leases = await asyncio.gather(*(limiter.acquire("w", 1 + i % 7) for i in range(TASKS)))
        held = sum(lease.cost for lease in leases if lease.allowed)
        assert algorithm.limit - 7 < held <= algorithm.limit
        assert (await limiter.peek("w")).remaining == algorithm.limit - held


def test_retry_after_waits_for_enough_expiries(make_limiter: MakeLimiter) -> None:
    clock = new_clock()
    with make_limiter(Concurrency(4, lease_ttl=10.0), clock) as limiter:
        assert limiter.acquire("k", 2).allowed
        clock.advance(3)
        assert limiter.acquire("k", 1).allowed
        clock.advance(3)
        assert limiter.acquire("k", 1).allowed
        clock.advance(1)
        # In flight: 2 (expires in 3 s), 1 (in 6 s), 1 (in 9 s).
        for cost, retry in ((1, 3.0), (2, 3.0), (3, 6.0), (4, 9.0)):
            denied = limiter.acquire("k", cost).decision
            assert (denied.allowed, denied.retry_after, denied.reset_after) == (False, retry, 9.0)
            assert denied.remaining == 0


# -- what each store keeps --------------------------------------------------------------------


@pytest.mark.redis
def test_redis_keys_expire_with_their_latest_lease(redis_client: Any, redis_prefix: str) -> None:
    from backends.redis import RedisBackend
    from backends.redis._plan import redis_key

    algorithm, clock = Concurrency(3, lease_ttl=5.0), new_clock()
    limiter = Limiter(
        algorithm, RedisBackend(client=redis_client, prefix=redis_prefix), clock=clock
    )
    stored = redis_key(redis_prefix, algorithm, "a{b}")
    first = limiter.acquire("a{b}")
    assert 4900 < redis_client.pttl(stored) <= 5000
    clock.advance(2)
    second = limiter.acquire("a{b}", 2)
    assert 4900 < redis_client.pttl(stored) <= 5000
    assert redis_client.hlen(stored) == 2
    limiter.release(second)
    # The TTL follows the latest live lease: the first one, 3 s from now.
    assert 2900 < redis_client.pttl(stored) <= 3000
    limiter.release(first)
    assert not redis_client.exists(stored)
    # An expired lease is pruned by the next write.
    limiter.acquire("a{b}")
    clock.advance(5)
    limiter.acquire("a{b}")
    assert redis_client.hlen(stored) == 1


@pytest.mark.postgres
def test_postgres_rows_expire_with_their_latest_lease(postgres_dsn: str, pg_table: str) -> None:
    from backends.postgres import PostgresBackend
    from backends.postgres.common import Layout
    from tests.support.postgres_fixtures import sql

    table = Layout(table=pg_table).qualified_table
    clock = new_clock()
    backend = PostgresBackend(postgres_dsn, table=pg_table)
    with Limiter(Concurrency(3, lease_ttl=5.0), backend, clock=clock) as limiter:
        first = limiter.acquire("k")
        clock.advance(2)
        second = limiter.acquire("k", 2)
        ((n, expires_at, costs),) = sql(postgres_dsn, f"SELECT n, expires_at, log_n FROM {table}")
        assert (n, costs) == (3, [1, 2])
        assert START_US + 7 * SECOND <= expires_at < START_US + 7 * SECOND + 2**20
        assert limiter.release(second)
        assert limiter.release(first)
        assert sql(postgres_dsn, f"SELECT count(*) FROM {table}") == [(0,)]
        limiter.acquire("k")
        clock.advance(5)
        assert backend.purge_expired(now_us=clock.now_us() + 2**20) == 1


@pytest.mark.postgres
def test_a_table_from_before_leases_gains_its_column(postgres_dsn: str, pg_table: str) -> None:
    from backends.postgres import PostgresBackend
    from backends.postgres.common import Layout
    from tests.support.postgres_fixtures import sql

    table = Layout(table=pg_table).qualified_table
    with Limiter(FixedWindow("2/s"), PostgresBackend(postgres_dsn, table=pg_table)) as limiter:
        assert limiter.hit("k").allowed
    sql(postgres_dsn, f"ALTER TABLE {table} DROP COLUMN lease_ids")
    sql(postgres_dsn, f"COMMENT ON TABLE {table} IS 'an older schema'")
    backend = PostgresBackend(postgres_dsn, table=pg_table)
    with Limiter(Concurrency(1), backend) as limiter:
        assert limiter.release(limiter.acquire("k"))


@pytest.mark.redis
def test_a_store_failing_at_release_does_not_hide_the_blocks_error(tmp_path: Any) -> None:
    from backends.redis import RedisBackend
    from limits_core import BackendUnavailable
    from tests.support.redis_servers import RedisProcess, require_binary

    require_binary()
    server = RedisProcess(tmp_path)
    server.start()
    limiter = Limiter(Concurrency(1), RedisBackend(server.url, socket_timeout=0.5))
    try:

        def fail_while_the_store_is_down() -> None:
            server.stop()
            raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError), limiter.lease("k"):
            fail_while_the_store_is_down()
        # Without an error of its own, the block reports the failed release.
        server.start()
        with pytest.raises(BackendUnavailable), limiter.lease("other"):
            server.stop()
    finally:
        limiter.close()
        server.stop()
