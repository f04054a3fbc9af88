"""The scripts on a real Redis: the model including backwards clocks, peeks and denials that
write nothing, TTL repair, a lost script cache, and the server's own clock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._plan import redis_key, redis_keys
from backends.redis._scripts import KINDS, algorithm_script, policy_script
from limits_core import AsyncLimiter, Limiter, ManualClock, Policy, Rate
from limits_core.algorithm import Algorithm
from tests.conftest import MakeAsyncLimiter, MakeLimiter

pytestmark = pytest.mark.redis

ALGORITHMS = {
    "fixed_window": FixedWindow("5/10s"),
    "sliding_log": SlidingLog("5/10s"),
    "token_bucket": TokenBucket("5/10s", burst=7),
    "token_bucket_odd": TokenBucket(Rate(7, 3.0), burst=4),
    "sliding_log_big": SlidingLog("1000/s"),
    "sliding_window_counter": SlidingWindowCounter("5/7s"),
    "sliding_window_counter_big": SlidingWindowCounter("1000/s"),
    "gcra": GCRA("7/10s", burst=4),
    "gcra_odd": GCRA(Rate(3, 7.0)),
    "leaky_bucket": LeakyBucket("3/7s", capacity=6),
    "policy": Policy(FixedWindow("5/10s"), SlidingLog("7/20s"), TokenBucket("3/s", burst=4)),
    "policy_new": Policy(
        SlidingWindowCounter("4/3s"), GCRA("2/s", burst=5), LeakyBucket("5/9s", capacity=6)
    ),
}
KEYS = ("a", "{x}", "}:{")


#: The shortest TTL the scripts set when the limiter sends its own clock (lua/common.lua).
CLIENT_CLOCK_MIN_PX = 1000


def ttl_bound_ms(algorithm: Algorithm) -> int:
    """The longest TTL a key of ``algorithm`` may get, with a limiter's (virtual) clock."""
    return max(-(-algorithm.max_state_ttl_us // 1000), CLIENT_CLOCK_MIN_PX)


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


def check_program(
    client: redis.Redis, prefix: str, algorithm: Algorithm, program: list[tuple[str, str, int, int]]
) -> None:
    """Run ``program`` against the script and the model: same decisions, bounded TTLs."""
    clock = ManualClock()
    prefix = f"{prefix}{time.monotonic_ns()}:"
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
            # -2 or 0: a TTL of a few ms ran out since the scan; -1 would be no TTL at all.
            pttl = client.pttl(key)
            assert pttl == -2 or 0 <= pttl <= ttl_bound_ms(algorithm)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(ALGORITHMS)), program=ops)
def test_scripts_agree_with_the_model_even_when_time_goes_back(
    redis_client: redis.Redis,
    redis_prefix: str,
    name: str,
    program: list[tuple[str, str, int, int]],
) -> None:
    check_program(redis_client, redis_prefix, ALGORITHMS[name], program)


KINDS_BY_PARAMETERS = {
    "fixed_window": lambda rate, extra: FixedWindow(rate),
    "sliding_log": lambda rate, extra: SlidingLog(rate),
    "token_bucket": lambda rate, extra: TokenBucket(rate, burst=extra),
    "sliding_window_counter": lambda rate, extra: SlidingWindowCounter(rate),
    "gcra": lambda rate, extra: GCRA(rate, burst=extra),
    "leaky_bucket": lambda rate, extra: LeakyBucket(rate, capacity=extra),
}


@st.composite
def any_algorithm_and_program(
    draw: st.DrawFn,
) -> tuple[Algorithm, list[tuple[str, str, int, int]]]:
    """Any kind with drawn parameters (periods that do not divide evenly included), and a
    program whose clock steps scale with the period, backwards too. Periods stay long next to
    the real time a program takes: key TTLs run on the server's clock, not the test's."""
    rate = Rate(
        draw(st.integers(1, 40)),
        draw(st.sampled_from([0.37, 1.0, 3.0, 7.000001, 61.0, 86_400.0])),
    )
    algorithm = KINDS_BY_PARAMETERS[draw(st.sampled_from(sorted(KINDS_BY_PARAMETERS)))](
        rate, draw(st.integers(1, 45))
    )
    period = rate.period_us
    step = st.one_of(
        st.integers(-period, -1),
        st.integers(0, 1_000),
        st.integers(0, period // 3),
        st.sampled_from([period - 1, period, period + 1]),
        st.integers(0, 3 * period),
    )
    op = st.tuples(
        st.sampled_from(["hit", "hit", "hit", "peek", "reset"]),
        st.sampled_from(KEYS[:2]),
        st.one_of(st.just(1), st.integers(1, algorithm.limit + 2)),
        step,
    )
    return algorithm, draw(st.lists(op, max_size=40))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=any_algorithm_and_program())
def test_scripts_agree_with_the_model_for_any_parameters(
    redis_client: redis.Redis,
    redis_prefix: str,
    case: tuple[Algorithm, list[tuple[str, str, int, int]]],
) -> None:
    check_program(redis_client, redis_prefix, *case)


@pytest.fixture
def backend(redis_client: redis.Redis, redis_prefix: str) -> RedisBackend:
    return RedisBackend(client=redis_client, prefix=redis_prefix)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_peeks_and_denials_write_nothing(
    name: str, backend: RedisBackend, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """For the policy, the denials come from its token bucket alone: the other limits would
    admit them, and still nothing of theirs is written."""
    algorithm = ALGORITHMS[name]
    limiter = Limiter(algorithm, backend, clock=ManualClock())
    keys = redis_keys(redis_prefix, algorithm, "k")
    limiter.peek("k", 1)
    limiter.hit("k", algorithm.limit + 1)
    assert not redis_client.exists(*keys)
    assert limiter.hit("k", algorithm.limit).allowed
    assert redis_client.exists(*keys) == len(keys)
    before = [redis_client.dump(key) for key in keys]
    for cost in (1, algorithm.limit + 1):
        assert limiter.hit("k", cost).denied
        limiter.peek("k", cost)
    assert [redis_client.dump(key) for key in keys] == before


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


def test_script_flush_on_a_cluster(
    redis_cluster_limiters: MakeLimiter,
    redis_cluster_async_limiters: MakeAsyncLimiter,
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    """After a SCRIPT FLUSH on every node, the script is loaded where the key lives."""
    limiter = redis_cluster_limiters(FixedWindow("3/10s"), ManualClock())
    for user_key in ("a", "b{c}", "}x{"):
        for expected in (2, 1, 0):
            redis_cluster_client.script_flush()
            assert limiter.hit(user_key).remaining == expected

    async def run() -> list[int]:
        async with redis_cluster_async_limiters(SlidingLog("3/10s"), ManualClock()) as alimiter:
            remaining = []
            for _ in range(3):
                redis_cluster_client.script_flush()
                remaining.append((await alimiter.hit("k")).remaining)
            return remaining

    assert asyncio.run(run()) == [2, 1, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_the_digest_is_the_one_redis_computes(kind: str, redis_client: redis.Redis) -> None:
    script = algorithm_script(kind)
    assert redis_client.script_load(script.source) == script.sha


def test_a_script_sent_after_noscript_is_cached(
    backend: RedisBackend, redis_client: redis.Redis
) -> None:
    limiter = Limiter(ALGORITHMS["policy"], backend)
    redis_client.script_flush()
    assert limiter.hit("k").allowed
    assert redis_client.script_exists(policy_script().sha) == [True]


SHORT = {
    "fixed_window": FixedWindow(Rate(3, 0.4)),
    "sliding_log": SlidingLog(Rate(3, 0.4)),
    "token_bucket": TokenBucket(Rate(3, 0.4)),
    "sliding_window_counter": SlidingWindowCounter(Rate(3, 0.4)),
    "gcra": GCRA(Rate(3, 0.4)),
    "leaky_bucket": LeakyBucket(Rate(3, 0.4)),
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
        assert 0 < denied.retry_after <= algorithm.max_state_ttl_us / 1_000_000
        assert 0 < redis_client.pttl(key) <= ttl_bound_ms(algorithm)
        # Once the key has expired on the server, the whole limit is back.
        deadline = time.monotonic() + 5
        while redis_client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not redis_client.exists(key)
        assert limiter.peek("k", 3).allowed
