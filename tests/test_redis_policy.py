"""Policies on Redis: one script, one key per limit, every key in the user key's slot, and a
denied request writes nothing to any of them."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis import RedisBackend
from backends.redis._plan import escape_tag, redis_keys
from limits_core import ConfigurationError, Limiter, ManualClock, Policy
from tests.conftest import MakeLimiter

pytestmark = pytest.mark.redis

POLICY = Policy(FixedWindow("3/10s"), SlidingLog("5/1m"), TokenBucket("1/s", burst=4))
NASTY = ["a", "a:b", "{", "}", "}{", "{x}y", "a{b}c{d}", "%7B", "ключ"]


@pytest.mark.parametrize("user_key", NASTY)
def test_all_keys_of_a_policy_decision_are_in_one_slot(
    user_key: str, redis_cluster_limiters: MakeLimiter, redis_cluster_client: Any
) -> None:
    keys = redis_keys("app:", POLICY, user_key)
    assert len(set(keys)) == len(POLICY.algorithms)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(escape_tag(user_key).encode())}
    # On a real cluster: the script ran (a cross-slot call would fail) and wrote every key.
    limiter = redis_cluster_limiters(POLICY, ManualClock())
    assert limiter.hit(user_key).allowed
    prefix = limiter.backend.prefix  # type: ignore[attr-defined]
    assert redis_cluster_client.exists(*redis_keys(prefix, POLICY, user_key)) == len(keys)


def test_a_denied_policy_writes_nothing(redis_client: redis.Redis, redis_prefix: str) -> None:
    clock = ManualClock()
    limiter = Limiter(POLICY, RedisBackend(client=redis_client, prefix=redis_prefix), clock=clock)
    keys = redis_keys(redis_prefix, POLICY, "k")
    assert limiter.hit("k", 3).allowed  # the fixed window is now full; the others are not
    before = [redis_client.dump(key) for key in keys]
    clock.advance(2)  # the bucket refills: only the fixed window denies now
    denied = limiter.hit("k")
    assert denied.denied
    assert [d.allowed for d in denied.details] == [False, True, True]
    assert [redis_client.dump(key) for key in keys] == before
    assert [redis_client.pttl(key) > 0 for key in keys] == [True] * 3
    limiter.reset("k")
    assert not redis_client.exists(*keys)
    assert limiter.hit("k", 3).allowed


def test_a_policy_key_is_apart_from_the_lone_algorithms(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """As in memory: a policy's state is its own, a lone FixedWindow on the same key another."""
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    alone = Limiter(POLICY.algorithms[0], backend)
    both = Limiter(POLICY, backend)
    assert alone.hit("k", 3).allowed
    assert both.hit("k", 3).allowed
    assert alone.hit("k").denied
    assert both.hit("k").denied


def test_a_policy_with_an_unsupported_limit_is_refused(redis_client: redis.Redis) -> None:
    class Other:
        kind = "other"
        namespace = "other:1"
        limit = 1
        max_state_ttl_us = 1

        def step(self, state: Any, now_us: int, cost: int, consume: bool = True) -> Any:
            raise NotImplementedError

    backend = RedisBackend(client=redis_client)
    with pytest.raises(ConfigurationError, match="no script"):
        backend.decide(Policy(FixedWindow("1/s"), Other()), "k", 1, None, True)  # type: ignore[arg-type]
