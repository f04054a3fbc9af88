"""What an attacker controls cannot reach code, secrets cannot reach messages, and rotating
identities cannot grow memory without bound.

- Keys reach Lua only through ``KEYS`` and values only through ``ARGV``; SQL gets keys only as
  bound parameters and names only as validated identifiers (see also
  ``tests/test_postgres_schema.py``). Keys written to break out of either are counted like any
  other key, each on its own, and leave the store intact.
- A password in a Redis URL or a PostgreSQL DSN never appears in an exception (its text, its
  repr, its chained causes) nor in a log line, even when the server cannot be reached.
- Fake client IPs or user IDs, one per request, cannot grow a bounded ``MemoryBackend``; IPv6
  clients are grouped by /64, so one host's 2**64 addresses are one key.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.redis import AsyncRedisBackend, RedisBackend
from limits_core import (
    AsyncLimiter,
    BackendUnavailable,
    ConfigurationError,
    Limiter,
    Rate,
    keys,
)
from limits_core.gate import Gate, acheck, check
from limits_core.request import RequestView
from tests.conftest import MakeLimiter
from tests.support.http import free_port
from tests.support.programs import new_clock

SECRET = "s3cret-Pa55"

#: Keys written to escape a Lua string or a SQL literal, to break a hash tag, or to be read as a
#: pattern; each must be one more key, nothing else.
INJECTIONS = [
    "'); DROP TABLE x; --",
    "'; DELETE FROM limits_core.limits_state; --",
    "\"; redis.call('FLUSHALL'); --",
    "]]..redis.call('FLUSHALL')..[[",
    "') OR ('1'='1",
    "$1",
    "%s%s%n",
    "\\' \\\\",
    "*",
    "{a}}{",
    "k}:{other",
]


@pytest.mark.parametrize("algorithm", [FixedWindow("3/h"), SlidingLog("3/h"), TokenBucket("3/h")])
def test_injection_keys_are_just_keys(make_limiter: MakeLimiter, algorithm: object) -> None:
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        assert limiter.hit("bystander").remaining == 2
        for key in INJECTIONS:
            assert [limiter.hit(key).allowed for _ in range(4)] == [True] * 3 + [False], key
        # Nothing leaked into another key, and the store still works as before.
        assert limiter.peek("bystander").remaining == 1
        assert limiter.hit("bystander").remaining == 1
        for key in INJECTIONS:
            limiter.reset(key)
            assert limiter.peek(key).remaining == 2, key
        assert limiter.peek("bystander").remaining == 0


@pytest.mark.parametrize(
    "name", ['x"; DROP TABLE y; --', "x'", 'limits_core"."limits_state', "a b", "pg_catalog\x00"]
)
def test_sql_identifiers_with_quotes_are_refused(name: str) -> None:
    for option in ("schema", "table"):
        for backend in (PostgresBackend, AsyncPostgresBackend):
            with pytest.raises(ConfigurationError):
                backend("postgresql://h/db", **{option: name})  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", [RedisBackend, AsyncRedisBackend])
def test_a_redis_prefix_cannot_break_the_hash_tag(backend: type) -> None:
    with pytest.raises(ConfigurationError):
        backend("redis://127.0.0.1:1/0", prefix="app:{evil}:")


# -- passwords never shown ----------------------------------------------------------------------


def _assert_hidden(exc: BaseException, *others: object) -> None:
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), *map(repr, others)]
    for text in shown:
        assert SECRET not in text, text


def _assert_logs_hidden(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the failure was not logged"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert record.exc_text is None or SECRET not in record.exc_text


UNREACHABLE: dict[str, Callable[[int], object]] = {
    "redis-url": lambda port: RedisBackend(
        f"redis://app:{SECRET}@127.0.0.1:{port}/0", socket_timeout=1
    ),
    "postgres-url": lambda port: PostgresBackend(
        f"postgresql://app:{SECRET}@127.0.0.1:{port}/db", pool_timeout=1
    ),
    "postgres-query": lambda port: PostgresBackend(
        f"postgresql://app@127.0.0.1:{port}/db?password={SECRET}", pool_timeout=1
    ),
    "postgres-conninfo": lambda port: PostgresBackend(
        f"host=127.0.0.1 port={port} user=app password={SECRET} dbname=db", pool_timeout=1
    ),
}
AUNREACHABLE: dict[str, Callable[[int], object]] = {
    "redis-url": lambda port: AsyncRedisBackend(
        f"redis://app:{SECRET}@127.0.0.1:{port}/0", socket_timeout=1
    ),
    "postgres-url": lambda port: AsyncPostgresBackend(
        f"postgresql://app:{SECRET}@127.0.0.1:{port}/db", pool_timeout=1
    ),
    "postgres-query": lambda port: AsyncPostgresBackend(
        f"postgresql://app@127.0.0.1:{port}/db?password={SECRET}", pool_timeout=1
    ),
    "postgres-conninfo": lambda port: AsyncPostgresBackend(
        f"host=127.0.0.1 port={port} user=app password={SECRET} dbname=db", pool_timeout=1
    ),
}


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_passwords_never_appear_in_errors_or_logs(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = UNREACHABLE[kind](free_port())
    limiter = Limiter(FixedWindow("5/s"), backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(BackendUnavailable) as caught:
            limiter.hit("k")
        _assert_hidden(caught.value, backend, limiter)
        # Through an integration, failing open: the failure is logged, the secret is not.
        gate = Gate(limiter, key=lambda view: "k", on_error="open")
        assert check(gate, RequestView("GET", "/")).reply is None
    _assert_logs_hidden(caplog)
    limiter.close()


@pytest.mark.parametrize("kind", sorted(AUNREACHABLE))
async def test_passwords_never_appear_in_errors_or_logs_async(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = AUNREACHABLE[kind](free_port())
    limiter = AsyncLimiter(FixedWindow("5/s"), backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(BackendUnavailable) as caught:
            await limiter.hit("k")
        _assert_hidden(caught.value, backend, limiter)
        gate = Gate(limiter, key=lambda view: "k", on_error="closed")
        outcome = await acheck(gate, RequestView("GET", "/"))
        assert outcome.reply is not None
        assert outcome.reply.status == 503
    _assert_logs_hidden(caplog)
    await limiter.aclose()


# -- identities rotated by an attacker ----------------------------------------------------------

PROXY = "10.0.0.1"


def _via_proxy(forwarded_for: str) -> RequestView:
    return RequestView("GET", "/", headers=(("x-forwarded-for", forwarded_for),), peer=PROXY)


def test_rotating_fake_ips_cannot_grow_a_bounded_store() -> None:
    backend = MemoryBackend(max_keys=500)
    limiter = Limiter(FixedWindow("5/minute"), backend)
    gate = Gate(limiter, key=keys.client_ip(trusted_proxies=[PROXY]))
    for i in range(5_000):
        fake = str(IPv4Address(0xC6120000 + i))  # 198.18.0.0/15, a new address each time
        assert check(gate, _via_proxy(fake)).reply is None
        assert len(backend) <= 500
    assert backend.evictions == 4_500


def test_rotating_fake_user_ids_cannot_grow_a_bounded_store() -> None:
    backend = MemoryBackend(max_keys=500, when_full="error")
    limiter = Limiter(FixedWindow("5/minute"), backend)
    gate = Gate(limiter, key=keys.user(lambda view: view.header("x-user")), on_error="closed")
    statuses = []
    for i in range(2_000):
        view = RequestView("GET", "/", headers=(("x-user", f"fake-{i}"),))
        reply = check(gate, view).reply
        statuses.append(200 if reply is None else reply.status)
    assert len(backend) == 500
    # A full store refuses new keys (503 here) and keeps every existing key's count.
    assert statuses == [200] * 500 + [503] * 1_500


def test_rotating_ipv6_addresses_of_one_network_is_one_client() -> None:
    backend = MemoryBackend()
    limiter = Limiter(FixedWindow("5/minute"), backend)
    gate = Gate(limiter, key=keys.client_ip(trusted_proxies=[PROXY]))
    network = int(IPv6Address("2001:db8:1:2::"))
    statuses = []
    for i in range(1_000):
        address = IPv6Address(network + (i * 0x9E3779B97F4A7C15) % 2**64)  # spread over the /64
        reply = check(gate, _via_proxy(str(address))).reply
        statuses.append(200 if reply is None else reply.status)
    assert statuses == [200] * 5 + [429] * 995
    assert len(backend) == 1


def test_ipv6_prefix_can_group_wider_networks() -> None:
    backend = MemoryBackend()
    limiter = Limiter(FixedWindow(Rate(5, 60)), backend)
    gate = Gate(limiter, key=keys.client_ip(trusted_proxies=[PROXY], ipv6_prefix=48))
    for subnet in range(200):  # every /64 of one /48 is one client
        check(gate, _via_proxy(f"2001:db8:7:{subnet:x}::1"))
    assert len(backend) == 1
