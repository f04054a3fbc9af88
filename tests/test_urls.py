"""Backends from URLs: the memory path, the error paths, and the real servers once merged."""

from __future__ import annotations

import sys

import pytest

from backends.memory import MemoryBackend
from limits_core import AsyncBackend, Backend, ConfigurationError
from limits_core.urls import SCHEMES, async_backend_from_url, backend_from_url, mask_url


@pytest.mark.parametrize("url", ["memory", "MEMORY", " memory ", "memory://"])
def test_memory_serves_both_facades(url: str) -> None:
    sync, asynchronous = backend_from_url(url), async_backend_from_url(url, prefix="ignored:")
    assert isinstance(sync, MemoryBackend)
    assert isinstance(asynchronous, MemoryBackend)
    assert isinstance(sync, Backend)
    assert isinstance(asynchronous, AsyncBackend)
    assert sync is not asynchronous  # each call is a new, empty store


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/db", "http://example.com", "memcached://x", "redis", "", "  "]
)
def test_unknown_schemes_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"backend URL"):
        backend_from_url(url)
    with pytest.raises(ConfigurationError, match=r"backend URL"):
        async_backend_from_url(url)


def test_non_string_url() -> None:
    with pytest.raises(ConfigurationError, match="non-empty str"):
        backend_from_url(None)  # type: ignore[arg-type]


def test_passwords_are_masked_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        backend_from_url("mysql://user:hunter2@db:3306/x")
    assert "hunter2" not in str(info.value)
    assert "user:***@db:3306" in str(info.value)
    assert mask_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://h",
        "unix:///tmp/r.sock",
        "redis+cluster://127.0.0.1:7000",
    ],
)
def test_missing_redis_backend_is_a_configuration_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "backends.redis", None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=r"backends\.redis"):
        backend_from_url(url, prefix="p:")


@pytest.mark.parametrize("url", ["postgresql://root@127.0.0.1/test", "postgres://h/db"])
def test_missing_postgres_backend_is_a_configuration_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "backends.postgres", None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=r"backends\.postgres"):
        async_backend_from_url(url)


def test_schemes_listed() -> None:
    assert {"memory", "redis", "rediss", "unix", "redis+cluster", "postgresql"} <= set(SCHEMES)


def test_redis_urls_build_redis_backends(request: pytest.FixtureRequest) -> None:
    redis_backends = pytest.importorskip("backends.redis")
    from tests.support.servers import require

    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    sync = backend_from_url(url, prefix="limits-core-test-urls:")
    asynchronous = async_backend_from_url(url, prefix="limits-core-test-urls:")
    assert isinstance(sync, redis_backends.RedisBackend)
    assert isinstance(asynchronous, redis_backends.AsyncRedisBackend)
    assert sync.prefix == "limits-core-test-urls:"
    sync.close()


def test_postgres_urls_build_postgres_backends(request: pytest.FixtureRequest) -> None:
    pg = pytest.importorskip("backends.postgres")
    from tests.support.servers import require

    dsn = require(request.config.getoption("--postgres-dsn"), 5432, "PostgreSQL")
    sync = backend_from_url(dsn, prefix="limits-core-test-urls:")
    assert isinstance(sync, pg.PostgresBackend)
    assert isinstance(
        async_backend_from_url(dsn.replace("postgresql", "postgres", 1)), pg.AsyncPostgresBackend
    )
    sync.close()
