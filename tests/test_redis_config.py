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

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._connect import mask_url
from backends.redis._plan import escape_tag, redis_key, redis_keys
from limits_core import (
    AsyncLimiter,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    Limiter,
    Policy,
)
from tests.support.redis_servers import free_port

pytestmark = pytest.mark.redis

ALL = (
    FixedWindow("5/10s"),
    SlidingLog("5/10s"),
    TokenBucket("5/10s", burst=7),
    SlidingWindowCounter("5/10s"),
    GCRA("5/10s"),
    LeakyBucket("5/10s"),
    Policy(FixedWindow("5/10s"), GCRA("7/10s")),
)


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


def test_a_retrying_client_draws_a_warning_when_its_retries_apply(redis_url: str) -> None:
    # redis-py's default retries on timeouts; they apply to calls through execute_command,
    # which single-connection (and cluster) clients use.
    client = redis.Redis(host="127.0.0.1", single_connection_client=True)
    with pytest.warns(RuntimeWarning, match="count a hit twice"):
        backend = RedisBackend(client=client)
    assert backend._direct is None
    client.close()
    # A pooled client's scripts go straight to its connections: its retries never apply.
    pooled = redis.Redis(host="127.0.0.1")
    assert RedisBackend(client=pooled)._direct is not None
    pooled.close()


@pytest.mark.parametrize("kind", ["single", "blocking", "resp3"])
def test_clients_of_every_kind_count_each_hit_once(
    kind: str, redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    if kind == "blocking":
        pool = redis.BlockingConnectionPool.from_url(
            redis_url, max_connections=2, retry=Retry(NoBackoff(), 0)
        )
        client = redis.Redis(connection_pool=pool)
    else:
        options: dict[str, Any] = {"single_connection_client": True} if kind == "single" else {}
        if kind == "resp3":
            options["protocol"] = 3
        client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), **options)
    limiter = Limiter(FixedWindow("3/10s"), RedisBackend(client=client, prefix=redis_prefix))
    assert [limiter.hit("k").remaining for _ in range(4)] == [2, 1, 0, 0]
    redis_client.script_flush()
    assert limiter.peek("k").denied
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
    redis_client.rpush(redis_key(redis_prefix, algorithm, "k"), "not a bucket")
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
            for key in redis_keys(prefix, algorithm, user_key):
                assert key.endswith("}")
                assert key_slot(key.encode()) == slot


def test_keys_are_prefix_namespace_and_tag(redis_client: redis.Redis, redis_prefix: str) -> None:
    backend = RedisBackend(client=redis_client, prefix=redis_prefix)
    Limiter(FixedWindow("5/10s"), backend).hit("a{b}:c")
    keys = [k.decode() for k in redis_client.keys(f"{redis_prefix}*")]
    assert keys == [f"{redis_prefix}fw:5:10000000:{{a%7Bb%7D:c}}"]


@pytest.mark.parametrize("single", [True, False])
async def test_async_clients_count_each_hit_once(
    single: bool, redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    client = redis.asyncio.Redis.from_url(
        redis_url, retry=redis.asyncio.retry.Retry(NoBackoff(), 0), single_connection_client=single
    )
    backend = AsyncRedisBackend(client=client, prefix=redis_prefix)
    assert (backend._direct is None) == single
    limiter = AsyncLimiter(FixedWindow("3/10s"), backend)
    assert [(await limiter.hit("k")).remaining for _ in range(4)] == [2, 1, 0, 0]
    redis_client.script_flush()
    assert (await limiter.peek("k")).denied
    await client.aclose()


def test_pack_sends_what_redis_py_sends() -> None:
    from redis.connection import Connection

    from backends.redis._batch import pack

    commands = [
        ("EVALSHA", "a" * 40, 2, "k:{é}", "k:{%7B}", 2, b"1000000000", b"3600000000"),
        ("SCRIPT", "LOAD", "return 1"),
        ("EVALSHA", "b" * 40, 1, "k", b"", 1, b"1", -1, 0, 10**15, 2**62, b"", ""),
    ]
    for _ in range(2):  # the second time, from the small arguments kept
        expected = b"".join(Connection().pack_commands(commands))
        assert pack(commands, "utf-8", "strict") == expected
