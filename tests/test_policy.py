"""Policies: several limits checked at once, all or nothing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings

from algorithms import FixedWindow, SlidingLog, TokenBucket
from limits_core import ConfigurationError, ManualClock, Policy
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.oracles import check_trace
from tests.support.programs import KEYS, Op, new_clock, programs, run_async, run_model, run_sync

#: The backends that run a policy as one atomic step (the PostgreSQL backend is adding its own).
POLICY_SYNC_BACKENDS = [
    pytest.param("memory_limiters", id="memory"),
    pytest.param("redis_limiters", id="redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster_limiters", id="redis-cluster", marks=pytest.mark.redis),
]
POLICY_ASYNC_BACKENDS = [
    pytest.param("memory_async_limiters", id="memory"),
    pytest.param("redis_async_limiters", id="redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster_async_limiters", id="redis-cluster", marks=pytest.mark.redis),
    pytest.param(
        "redis_async_limiters_uncoalesced", id="redis-uncoalesced", marks=pytest.mark.redis
    ),
    pytest.param(
        "redis_cluster_async_limiters_uncoalesced",
        id="redis-cluster-uncoalesced",
        marks=pytest.mark.redis,
    ),
]


@pytest.fixture(params=POLICY_SYNC_BACKENDS)
def make_policy_limiter(request: pytest.FixtureRequest) -> MakeLimiter:
    """``make(algorithm, clock=None) -> Limiter`` on each sync backend with policies."""
    factory: MakeLimiter = request.getfixturevalue(request.param)
    return factory


@pytest.fixture(params=POLICY_ASYNC_BACKENDS)
def make_policy_async_limiter(request: pytest.FixtureRequest) -> MakeAsyncLimiter:
    """``make(algorithm, clock=None) -> AsyncLimiter`` on each async backend with policies."""
    factory: MakeAsyncLimiter = request.getfixturevalue(request.param)
    return factory


POLICY = Policy(FixedWindow("4/10s"), SlidingLog("6/30s"), TokenBucket("1/s", burst=3))
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(program=programs(POLICY, max_ops=60, keys=KEYS[:2]))
def test_model_keeps_every_limits_promise(program: list[Op]) -> None:
    check_trace(POLICY, program, run_model(POLICY, program))


@fixture_ok
@given(program=programs(POLICY, max_ops=40, keys=KEYS[:3]))
def test_sync_backends_agree_with_the_model(
    make_policy_limiter: MakeLimiter, program: list[Op]
) -> None:
    clock = new_clock()
    with make_policy_limiter(POLICY, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(POLICY, program)


@fixture_ok
@given(program=programs(POLICY, max_ops=40, keys=KEYS[:3]))
async def test_async_backends_agree_with_the_model(
    make_policy_async_limiter: MakeAsyncLimiter, program: list[Op]
) -> None:
    clock = new_clock()
    async with make_policy_async_limiter(POLICY, clock) as limiter:
        assert await run_async(limiter, clock, program) == run_model(POLICY, program)


def test_a_request_denied_by_one_limit_consumes_from_none(make_policy_limiter: MakeLimiter) -> None:
    clock = ManualClock()
    limiter = make_policy_limiter(Policy(FixedWindow("10/second"), FixedWindow("3/day")), clock)
    assert [limiter.hit("k").allowed for _ in range(4)] == [True, True, True, False]
    denied = limiter.hit("k")
    assert denied.limit == 3
    assert denied.retry_after == 86_400.0
    per_second, per_day = denied.details
    assert per_second.allowed
    assert per_second.remaining == 6  # three admitted, and this one as if it stood alone
    assert not per_day.allowed
    clock.advance(1)
    limiter.reset("k")
    assert limiter.hit("k", 3).allowed


def test_the_most_restrictive_limit_is_reported(make_policy_limiter: MakeLimiter) -> None:
    limiter = make_policy_limiter(Policy(FixedWindow("10/second"), FixedWindow("1000/day")))
    d = limiter.hit("k", 4)
    assert (d.limit, d.remaining) == (10, 6)
    assert [p.remaining for p in d.details] == [6, 996]
    assert math.isinf(limiter.hit("k", 11).retry_after)


def test_policy_validation() -> None:
    with pytest.raises(ConfigurationError):
        Policy()
    with pytest.raises(ConfigurationError):
        Policy(FixedWindow("1/s"), FixedWindow("1/s"))
    with pytest.raises(ConfigurationError):
        Policy(FixedWindow("1/s"), names=["a", "b"])
    with pytest.raises(ConfigurationError):
        Policy(POLICY)  # type: ignore[arg-type]
    assert Policy([FixedWindow("1/s"), FixedWindow("5/m")]).names == ("1/second", "5/minute")
    assert POLICY.limit == 3
