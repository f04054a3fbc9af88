"""Refunds on the real stores: what they leave behind (TTLs, rows, deleted keys), a lost
Redis script cache, and concurrent reserve-and-refund on one key."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
import redis.cluster

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.postgres import PostgresBackend
from backends.postgres.common import Layout
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._plan import redis_key, redis_keys
from limits_core import AsyncLimiter, Limiter, ManualClock, Policy
from limits_core.algorithm import Algorithm
from tests.conftest import ALGORITHMS, MakeAsyncLimiter, MakeLimiter
from tests.support.postgres_fixtures import sql

START = 1_700_000_000.0


@pytest.mark.redis
@pytest.mark.parametrize(
    ("algorithm", "pttl_ms"),
    [
        # 10/10s: 3 of 10 used after the refund, back in 3 s.
        (TokenBucket("10/10s"), 3000),
        (GCRA("10/10s"), 3000),
        (LeakyBucket("10/10s"), 3000),
        # The window opened at 0 and ends at 10 s; the refund comes at 4 s.
        (FixedWindow("10/10s"), 6000),
        # One unit left, logged at 0 s: it counts until 10 s.
        (SlidingLog("10/10s"), 6000),
    ],
    ids=lambda value: getattr(value, "kind", str(value)),
)
def test_a_refund_keeps_the_ttl_of_what_is_left(
    algorithm: Algorithm, pttl_ms: int, redis_client: redis.Redis, redis_prefix: str
) -> None:
    clock = ManualClock(START)
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    limiter = Limiter(algorithm, backend, clock=clock)
    key = redis_key(redis_prefix, algorithm, "k")
    assert limiter.hit("k", 5).allowed
    if isinstance(algorithm, FixedWindow | SlidingLog):
        clock.advance(4)
        if isinstance(algorithm, SlidingLog):
            assert limiter.hit("k", 2).allowed  # logged at 4 s, refunded first
            assert limiter.refund("k", 6).remaining == 8
        else:
            assert limiter.refund("k", 2).remaining == 6
    else:
        assert limiter.refund("k", 2).remaining == 6
    assert pttl_ms - 50 < redis_client.pttl(key) <= pttl_ms
    limiter.refund("k", 10**9)
    if isinstance(algorithm, FixedWindow):
        # The live window stays, with nothing counted in it, until it ends.
        assert redis_client.hget(key, "n") == b"0"
        assert pttl_ms - 50 < redis_client.pttl(key) <= pttl_ms
    else:
        assert not redis_client.exists(key)


@pytest.mark.redis
def test_sliding_window_counter_refund_ttl(redis_client: redis.Redis, redis_prefix: str) -> None:
    algorithm = SlidingWindowCounter("10/10s")
    clock = ManualClock(1_700_000_000.0)  # a multiple of 10 s: a window starts here
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    limiter = Limiter(algorithm, backend, clock=clock)
    key = redis_key(redis_prefix, algorithm, "k")
    assert limiter.hit("k", 4).allowed
    clock.advance(12)  # the next window: the 4 weigh as its previous count
    assert limiter.hit("k", 1).allowed
    limiter.refund("k", 5)
    # Only prev is left: it weighs until this window ends, at 20 s.
    assert 7950 < redis_client.pttl(key) <= 8000
    clock.advance(10)
    limiter.refund("k", 1)  # the window after: nothing to give back, nothing changed
    assert 7900 < redis_client.pttl(key) <= 8000


@pytest.mark.redis
def test_a_refund_creates_no_key(redis_client: redis.Redis, redis_prefix: str) -> None:
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    for make in ALGORITHMS.values():
        algorithm = make()
        Limiter(algorithm, backend).refund("nobody", 2)
    policy = Policy(FixedWindow("3/10s"), TokenBucket("1/s"))
    Limiter(policy, backend).refund("nobody", 2)
    assert not list(redis_client.scan_iter(match=f"{redis_prefix}*"))


@pytest.mark.redis
def test_a_policy_refund_on_redis_deletes_what_is_full_again(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    policy = Policy(FixedWindow("3/10s"), SlidingLog("5/1m"), TokenBucket("1/s", burst=4))
    limiter = Limiter(
        policy, RedisBackend(client=redis_client, prefix=redis_prefix), clock=ManualClock(START)
    )
    keys = redis_keys(redis_prefix, policy, "k")
    assert limiter.hit("k", 3).allowed
    limiter.refund("k", 3)
    # The window lives on (empty), the log and the bucket are as if never used.
    assert [bool(redis_client.exists(key)) for key in keys] == [True, False, False]


@pytest.mark.redis
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_script_flush_before_a_refund(
    name: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    algorithm = ALGORITHMS[name]()
    limiter = Limiter(
        algorithm, RedisBackend(client=redis_client, prefix=redis_prefix), clock=ManualClock()
    )
    assert limiter.hit("k", algorithm.limit).allowed
    redis_client.script_flush()
    assert limiter.refund("k", algorithm.limit).remaining == algorithm.limit - 1
    redis_client.script_flush()
    assert limiter.hit("k", algorithm.limit).allowed


@pytest.mark.redis
async def test_script_flush_before_an_async_refund(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    backend = AsyncRedisBackend(redis_url, prefix=redis_prefix)
    policy = Policy(FixedWindow("3/10s"), TokenBucket("1/s", burst=4))
    async with AsyncLimiter(policy, backend, clock=ManualClock()) as limiter:
        assert (await limiter.hit("k", 3)).allowed
        redis_client.script_flush()
        # The window counts 1 and the bucket holds 3: less a peek's 1, the window leaves 1.
        assert (await limiter.refund("k", 2)).remaining == 1


@pytest.mark.redis
def test_script_flush_before_a_refund_on_a_cluster(
    redis_cluster_limiters: MakeLimiter,
    redis_cluster_async_limiters: MakeAsyncLimiter,
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    limiter = redis_cluster_limiters(SlidingLog("3/10s"), ManualClock())
    for user_key in ("a", "b{c}", "}x{"):
        assert limiter.hit(user_key, 3).allowed
        redis_cluster_client.script_flush()
        assert limiter.refund(user_key, 2).remaining == 1

    async def run() -> int:
        async with redis_cluster_async_limiters(GCRA("3/10s"), ManualClock()) as alimiter:
            await alimiter.hit("k", 3)
            redis_cluster_client.script_flush()
            return (await alimiter.refund("k", 1)).remaining

    assert asyncio.run(run()) == 0


@pytest.mark.postgres
def test_postgres_refund_rows(postgres_dsn: str, pg_table: str) -> None:
    backend = PostgresBackend(postgres_dsn, table=pg_table, prefix="p:")
    table = Layout(table=pg_table).qualified_table
    clock = ManualClock(START)
    with Limiter(SlidingLog("10/10s"), backend, clock=clock) as limiter:
        limiter.refund("k", 3)
        assert sql(postgres_dsn, f"SELECT count(*) FROM {table}") == [(0,)]
        assert limiter.hit("k", 2).allowed
        clock.advance(1)
        assert limiter.hit("k", 3).allowed
        clock.advance(1)
        assert limiter.hit("k", 2).allowed
        assert limiter.refund("k", 4).remaining == 6  # 2 at 2 s and 2 of the 3 at 1 s
        rows = sql(postgres_dsn, f"SELECT n, t, log_t, log_n, expires_at FROM {table}")
        start_us = round(START * 1e6)
        assert rows == [
            (
                3,
                start_us + 1_000_000,
                [start_us, start_us + 1_000_000],
                [2, 1],
                (start_us + 11_000_000) | 1048575,
            )
        ]
        limiter.refund("k", 3)
        assert sql(postgres_dsn, f"SELECT count(*) FROM {table}") == [(0,)]


def _reserve_and_refund(limiter: Limiter, rounds: int) -> None:
    for _ in range(rounds):
        if limiter.hit("shared", 3).allowed:
            limiter.refund("shared", 3)


@pytest.mark.parametrize("name", ["token_bucket", "gcra", "sliding_log", "fixed_window"])
def test_concurrent_reservations_and_refunds_lose_nothing(
    name: str, make_limiter: MakeLimiter
) -> None:
    """Threads reserve 3 and give the 3 back, at a frozen clock: a refund lost or counted
    twice would leave the key short of (or above) its full capacity."""
    algorithm = ALGORITHMS[name]()
    with make_limiter(algorithm, ManualClock(START)) as limiter:
        threads = [
            threading.Thread(target=_reserve_and_refund, args=(limiter, 25)) for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert limiter.hit("shared", algorithm.limit).allowed


async def test_concurrent_async_reservations_and_refunds_lose_nothing(
    make_async_limiter: MakeAsyncLimiter,
) -> None:
    algorithm = TokenBucket("5/10s", burst=7)

    async def worker(limiter: AsyncLimiter) -> None:
        for _ in range(20):
            if (await limiter.hit("shared", 3)).allowed:
                await limiter.refund("shared", 3)

    async with make_async_limiter(algorithm, ManualClock(START)) as limiter:
        await asyncio.gather(*(worker(limiter) for _ in range(8)))
        assert (await limiter.hit("shared", 7)).allowed
