"""Redis backends: construction, keys and hash tags, error translation, client ownership."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.cluster import key_slot
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._connect import mask_url
from backends.redis._plan import escape_tag, redis_key
from limits_core import (
    AsyncLimiter,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    Limiter,
)
from tests.support.redis_servers import free_port

pytestmark = pytest.mark.redis

ALL = (FixedWindow("5/10s"), SlidingLog("5/10s"), TokenBucket("5/10s", burst=7))


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".")


def test_importing_the_backends_imports_no_driver() -> None:
    _run(
        "import sys, backends.redis, limits_core, algorithms\n"
        "assert not any(m == 'redis' or m.startswith('redis.') for m in sys.modules), 'redis'"
    )


def test_missing_redis_names_the_extra() -> None:
    _run(
        "import sys; sys.modules['redis'] = None\n"
        "from backends.redis import RedisBackend\n"
        "from limits_core import ConfigurationError\n"
        "try:\n    RedisBackend('redis://127.0.0.1:6379/0')\n"
        "except ConfigurationError as e:\n"
        "    assert \"pip install 'limits-core[redis]'\" in str(e)\n"
        "else:\n    raise SystemExit('no error')"
    )


@pytest.mark.parametrize("prefix", ["a{b:", "}", "{x}:"])
def test_prefix_with_braces_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="must not contain"):
        RedisBackend("redis://127.0.0.1:6379/0", prefix=prefix)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "memcached://x", "redis+sentinel://x"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported Redis URL"):
        RedisBackend(url)


def test_url_and_client_are_exclusive() -> None:
    client = redis.Redis(retry=Retry(NoBackoff(), 0))
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisBackend("redis://127.0.0.1:6379/0", client=client)
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisBackend()
    with pytest.raises(ConfigurationError, match="apply only"):
        RedisBackend(client=client, max_connections=3)


def test_a_client_of_the_wrong_twin_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\.Redis"):
        RedisBackend(client=redis.asyncio.Redis(retry=redis.asyncio.retry.Retry(NoBackoff(), 0)))
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        AsyncRedisBackend(client=redis.Redis(retry=Retry(NoBackoff(), 0)))


@pytest.mark.parametrize("value", [0, -1, float("inf"), "1", True])
def test_bad_timeouts_are_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://127.0.0.1:6379/0", socket_timeout=value)
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://127.0.0.1:6379/0", connect_timeout=value)


def test_owned_clients_never_retry_and_default_to_one_second() -> None:
    backend = RedisBackend("redis://127.0.0.1:6379/0")
    kwargs = backend.client.connection_pool.connection_kwargs
    assert kwargs["retry"].get_retries() == 0
    assert kwargs["socket_timeout"] == 1.0
    assert kwargs["socket_connect_timeout"] == 1.0
    connection = backend.client.connection_pool.make_connection()
    assert connection.retry.get_retries() == 0
    # Nothing forces a parser: hiredis is used whenever redis-py finds it.
    assert ("Hiredis" in type(connection._parser).__name__) == HIREDIS_AVAILABLE
    backend.close()


def test_cluster_urls_build_cluster_clients_that_never_retry(redis_cluster: Any) -> None:
    backend = RedisBackend(redis_cluster.url)
    try:
        assert isinstance(backend.client, redis.cluster.RedisCluster)
        assert backend.client.retry.get_retries() == 0
        assert repr(backend).startswith("RedisBackend('redis+cluster://127.0.0.1:")
    finally:
        backend.close()


def test_an_unreachable_cluster_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"\*\*\*"):
        RedisBackend(f"redis+cluster://:pw@127.0.0.1:{free_port()}")


def test_a_retrying_client_draws_a_warning(redis_url: str) -> None:
    client = redis.Redis(host="127.0.0.1")  # redis-py's default: retries on timeouts
    with pytest.warns(RuntimeWarning, match="count a hit twice"):
        RedisBackend(client=client)
    client.close()


def test_passwords_are_masked() -> None:
    assert mask_url("redis://user:s3cret@host:1/0") == "redis://user:***@host:1/0"
    assert mask_url("rediss://:s3cret@host/0") == "rediss://:***@host/0"
    assert mask_url("redis://host:1/0") == "redis://host:1/0"
    backend = RedisBackend("redis://:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in repr(backend)
    backend.close()


def test_refused_connection_is_unavailable_and_masks_the_password() -> None:
    port = free_port()
    backend = RedisBackend(f"redis://:s3cret@127.0.0.1:{port}/0")
    limiter = Limiter(FixedWindow("5/10s"), backend)
    with pytest.raises(BackendUnavailable) as caught:
        limiter.hit("k")
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "***" in message
    assert "s3cret" not in message
    with pytest.raises(BackendUnavailable):
        limiter.reset("k")
    limiter.close()


async def test_refused_connection_is_unavailable_async() -> None:
    port = free_port()
    async with AsyncLimiter(
        SlidingLog("5/10s"), AsyncRedisBackend(f"redis://:pw@127.0.0.1:{port}/0")
    ) as limiter:
        with pytest.raises(BackendUnavailable, match=r"\*\*\*"):
            await limiter.hit("k")


def test_a_server_error_is_a_backend_error(redis_client: redis.Redis, redis_prefix: str) -> None:
    algorithm = TokenBucket("5/10s")
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    redis_client.set(redis_key(redis_prefix, algorithm, "k"), "not a hash")
    with pytest.raises(BackendError) as caught:
        Limiter(algorithm, backend).hit("k")
    assert not isinstance(caught.value, BackendUnavailable)
    assert "WRONGTYPE" in str(caught.value)


def test_close_only_closes_an_owned_client(redis_client: redis.Redis, redis_prefix: str) -> None:
    RedisBackend(client=redis_client, prefix=redis_prefix).close()
    assert redis_client.ping()
    backend = RedisBackend("redis://127.0.0.1:6379/0")
    backend.close()
    backend.close()  # idempotent


def test_unknown_algorithms_are_refused(redis_client: redis.Redis) -> None:
    backend = RedisBackend(client=redis_client)
    with pytest.raises(ConfigurationError, match="no script"):
        backend.decide(TokenBucketLike(), "k", 1, None, True)  # type: ignore[arg-type]


class TokenBucketLike:
    kind = "gcra"
    namespace = "gcra:1"
    limit = 1
    max_state_ttl_us = 1


# --- keys and hash tags -------------------------------------------------------------------

NASTY = ["a", "a:b", "{", "}", "{}", "}{", "{x}y", "a{b}c{d}", "%", "%7B", ":{:}:", "ключ", "{%}"]


@given(st.text(min_size=1), st.text(min_size=1))
def test_escaping_is_injective_and_brace_free(a: str, b: str) -> None:
    ta, tb = escape_tag(a), escape_tag(b)
    assert ta
    assert "{" not in ta
    assert "}" not in ta
    assert (ta == tb) == (a == b)


@pytest.mark.parametrize("user_key", NASTY)
def test_every_key_of_a_user_key_is_in_its_slot(user_key: str) -> None:
    """Whatever the user text, the hash tag is exactly the escaped user key: every Redis key
    built for it (any algorithm, any prefix) hashes to one slot."""
    slot = key_slot(escape_tag(user_key).encode())
    for prefix in ("", "limits-core:", "app:x:"):
        for algorithm in ALL:
            key = redis_key(prefix, algorithm, user_key)
            assert key.endswith("}")
            assert key_slot(key.encode()) == slot


def test_keys_are_prefix_namespace_and_tag(redis_client: redis.Redis, redis_prefix: str) -> None:
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    Limiter(FixedWindow("5/10s"), backend).hit("a{b}:c")
    keys = [k.decode() for k in redis_client.keys(f"{redis_prefix}*")]
    assert keys == [f"{redis_prefix}fw:5:10000000:{{a%7Bb%7D:c}}"]
