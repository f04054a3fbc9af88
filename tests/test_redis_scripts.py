"""The scripts on a real Redis: the model including backwards clocks, peeks and denials that
write nothing, TTL repair, a lost script cache, and the server's own clock."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._plan import redis_key
from limits_core import AsyncLimiter, Limiter, ManualClock, Rate
from limits_core.algorithm import Algorithm

pytestmark = pytest.mark.redis

ALGORITHMS = {
    "fixed_window": FixedWindow("5/10s"),
    "sliding_log": SlidingLog("5/10s"),
    "token_bucket": TokenBucket("5/10s", burst=7),
    "token_bucket_odd": TokenBucket(Rate(7, 3.0), burst=4),
    "sliding_log_big": SlidingLog("1000/s"),
}
KEYS = ("a", "{x}", "}:{")


def ttl_bound_ms(algorithm: Algorithm) -> int:
    return -(-algorithm.max_state_ttl_us // 1000)


# Clock steps include going backwards, which the shared programs never do.
steps = st.one_of(st.integers(-5_000_000, -1), st.integers(0, 2_000), st.integers(0, 12_000_000))
ops = st.lists(
    st.tuples(
        st.sampled_from(["hit", "hit", "peek", "reset"]),
        st.sampled_from(KEYS),
        st.one_of(st.just(1), st.integers(1, 1002)),
        steps,
    ),
    max_size=40,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(ALGORITHMS)), program=ops)
def test_scripts_agree_with_the_model_even_when_time_goes_back(
    redis_client: redis.Redis,
    redis_prefix: str,
    name: str,
    program: list[tuple[str, str, int, int]],
) -> None:
    algorithm = ALGORITHMS[name]
    clock = ManualClock()
    client = redis_client
    prefix = f"{redis_prefix}{time.monotonic_ns()}:"
    limiter = Limiter(algorithm, RedisBackend(client=client, prefix=prefix), clock=clock)
    states: dict[str, Any] = {}
    try:
        for op, key, cost, step in program:
            if clock.now_us() + step > 0:
                clock.advance(step / 1_000_000)
            if op == "reset":
                limiter.reset(key)
                states.pop(key, None)
                continue
            got = limiter.hit(key, cost) if op == "hit" else limiter.peek(key, cost)
            want, state, _ = algorithm.step(
                states.get(key), clock.now_us(), min(cost, algorithm.limit + 1)
            )
            if op == "hit" and want.allowed:
                states[key] = state
            assert got == want, (op, key, cost)
        for key in client.scan_iter(match=f"{prefix}*"):
            assert 0 < client.pttl(key) <= ttl_bound_ms(algorithm)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


@pytest.fixture
def backend(redis_client: redis.Redis, redis_prefix: str) -> RedisBackend:
    return RedisBackend(client=redis_client, prefix=redis_prefix)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_peeks_and_denials_write_nothing(
    name: str, backend: RedisBackend, redis_client: redis.Redis, redis_prefix: str
) -> None:
    algorithm = ALGORITHMS[name]
    limiter = Limiter(algorithm, backend, clock=ManualClock())
    key = redis_key(redis_prefix, algorithm, "k")
    limiter.peek("k", 1)
    limiter.hit("k", algorithm.limit + 1)
    assert not redis_client.exists(key)
    assert limiter.hit("k", algorithm.limit).allowed
    before = redis_client.dump(key)
    for cost in (1, algorithm.limit + 1):
        assert limiter.hit("k", cost).denied
        limiter.peek("k", cost)
    assert redis_client.dump(key) == before


def test_fixed_window_repairs_a_key_without_ttl(
    backend: RedisBackend, redis_client: redis.Redis, redis_prefix: str
) -> None:
    algorithm = FixedWindow("2/10s")
    limiter = Limiter(algorithm, backend)
    key = redis_key(redis_prefix, algorithm, "k")
    limiter.hit("k")
    for call in (lambda: limiter.hit("k"), lambda: limiter.hit("k"), lambda: limiter.peek("k")):
        redis_client.persist(key)
        assert redis_client.pttl(key) == -1
        call()
        assert 0 < redis_client.pttl(key) <= 10_000
    assert redis_client.hget(key, "n") == b"2"


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_script_flush_between_calls_counts_each_hit_once(
    name: str, backend: RedisBackend, redis_client: redis.Redis
) -> None:
    algorithm = ALGORITHMS[name]
    limiter = Limiter(algorithm, backend, clock=ManualClock())
    for expected in range(algorithm.limit - 1, -1, -1):
        redis_client.script_flush()
        assert limiter.hit("k").remaining == expected
    assert limiter.hit("k").denied


async def test_script_flush_between_async_calls(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    async with AsyncLimiter(
        TokenBucket("5/10s"), AsyncRedisBackend(redis_url, prefix=redis_prefix), clock=ManualClock()
    ) as limiter:
        for expected in (4, 3, 2, 1, 0):
            redis_client.script_flush()
            assert (await limiter.hit("k")).remaining == expected


SHORT = {
    "fixed_window": FixedWindow(Rate(3, 0.4)),
    "sliding_log": SlidingLog(Rate(3, 0.4)),
    "token_bucket": TokenBucket(Rate(3, 0.4)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHORT))
def test_server_clock_windows_expire_and_the_limit_comes_back(
    name: str, backend: RedisBackend, redis_client: redis.Redis, redis_prefix: str
) -> None:
    algorithm = SHORT[name]
    limiter = Limiter(algorithm, backend)  # no clock: the server's TIME decides
    key = redis_key(redis_prefix, algorithm, "k")
    for _ in range(2):
        assert limiter.hit("k", 3).allowed
        denied = limiter.hit("k")
        assert denied.denied
        assert 0 < denied.retry_after <= 0.4
        assert 0 < redis_client.pttl(key) <= 400
        # Once the key has expired on the server, the whole limit is back.
        deadline = time.monotonic() + 5
        while redis_client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not redis_client.exists(key)
        assert limiter.peek("k", 3).allowed
