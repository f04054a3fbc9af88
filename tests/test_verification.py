"""``verify`` on the in-memory store, on a deliberately broken store, and on the real servers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from algorithms import ALGORITHMS, FixedWindow
from backends.memory import MemoryBackend
from limits_core import Backend, Decision
from limits_core.algorithm import Algorithm
from limits_core.programs import KEYS, Advance, Hit, Peek, Reset, random_program, run_model
from limits_core.verification import (
    PurgesPrefix,
    ReportsKeysWithoutExpiry,
    keys_without_expiry,
    purge_prefix,
    verify,
)
from tests.support.broken import OverAdmittingBackend


def _memory(prefix: str) -> MemoryBackend:
    return MemoryBackend()


def test_memory_passes_every_algorithm() -> None:
    reports = verify(ALGORITHMS, _memory, _memory, examples=15, seed=3)
    assert [r.name for r in reports] == list(ALGORITHMS)
    for r in reports:
        assert r.passed, r
        assert r.programs == 30
        assert r.decisions > 0
        assert [(h.mode, h.admitted) for h in r.hammers] == [("threads", 150), ("tasks", 150)]
        assert r.keys_without_expiry == []
        assert "nothing to delete" in r.cleanup
        assert r.prefix.startswith("limits-core-verify:")
        assert r.prefix.endswith(f"{r.name}:")


def test_over_admitting_store_fails_with_evidence() -> None:
    stores: list[OverAdmittingBackend] = []

    def broken(prefix: str) -> OverAdmittingBackend:
        stores.append(OverAdmittingBackend(every=10))
        return stores[-1]

    reports = verify(ALGORITHMS, broken, broken, examples=20, seed=1)
    assert all(s.over_admitted for s in stores)
    for r in reports:
        assert not r.passed
        # Each hammer denies about 300 requests: every tenth of them slipped through.
        assert all(h.admitted > h.limit and not h.passed for h in r.hammers), r.hammers
        assert r.disagreements, r.name
        first = r.disagreements[0]
        assert first.expected is not None
        assert first.got is not None
        assert not first.expected.allowed
        assert first.got.allowed
        assert "model denied" in str(first)
        assert "store allowed" in str(first)


def test_store_errors_are_reported_not_raised() -> None:
    class Failing(MemoryBackend):
        def decide(self, *args: Any) -> Decision:
            raise RuntimeError("the store is on fire")

    reports = verify({"fixed_window": FixedWindow}, lambda p: Failing(), _memory, examples=3)
    (report,) = reports
    assert not report.passed
    assert any("the store is on fire" in e for e in report.errors)
    assert [h.mode for h in report.hammers] == ["tasks"]  # the async half still ran


class HookedBackend(MemoryBackend):
    """A store offering the optional hooks: it keeps one immortal key."""

    def __init__(self) -> None:
        super().__init__()
        self.purged = 0

    def purge_prefix(self) -> int:
        self.purged += 1
        return 42

    def keys_without_expiry(self) -> list[str]:
        return ["p:immortal"]


def test_hooks_are_used_and_a_key_without_expiry_fails() -> None:
    store = HookedBackend()
    assert isinstance(store, PurgesPrefix)
    assert isinstance(store, ReportsKeysWithoutExpiry)
    (report,) = verify(
        {"sliding_log": ALGORITHMS["sliding_log"]}, lambda p: store, _memory, examples=3
    )
    assert report.keys_without_expiry == ["p:immortal"]
    assert report.cleanup.startswith("deleted 42 keys")
    assert store.purged == 1
    assert not report.passed


def test_memory_fallbacks() -> None:
    store = MemoryBackend()
    store.decide(FixedWindow("1/second"), "k", 1, 1_700_000_000_000_000, True)
    assert keys_without_expiry(store, "p:") == []
    assert "nothing to delete" in purge_prefix(store, "p:")
    assert len(store) == 0
    with pytest.raises(ValueError, match="empty prefix"):
        purge_prefix(store, "")
    assert keys_without_expiry(object(), "p:") is None
    assert "not supported" in purge_prefix(object(), "p:")


def test_random_programs_are_reproducible_and_varied() -> None:
    algorithm = FixedWindow("5/10s")
    a = [random_program(random.Random(5), algorithm, KEYS) for _ in range(3)]
    b = [random_program(random.Random(5), algorithm, KEYS) for _ in range(3)]
    assert a == b
    ops = [op for _ in range(50) for op in random_program(random.Random(_), algorithm, KEYS)]
    assert {type(op) for op in ops} == {Advance, Hit, Peek, Reset}
    assert max(op.cost for op in ops if isinstance(op, Hit)) == algorithm.limit + 2
    decisions = run_model(algorithm, [op for op in ops if isinstance(op, Hit)][:40])
    assert any(d is not None and not d.allowed for d in decisions)


# -- live stores, once their backends are merged ----------------------------------------------


def _verify_live(url: str, module: str) -> list[Any]:
    from limits_core.urls import async_backend_from_url, backend_from_url

    return verify(
        ALGORITHMS,
        lambda p: backend_from_url(url, prefix=p),
        lambda p: async_backend_from_url(url, prefix=p),
        examples=10,
        seed=11,
    )


@pytest.mark.redis
def test_verify_passes_on_redis_and_cleans_up(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("backends.redis")
    redis = pytest.importorskip("redis")
    from tests.support.servers import require

    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    reports = _verify_live(url, "backends.redis")
    for r in reports:
        assert r.passed, (r.errors, r.disagreements[:3], r.hammers, r.keys_without_expiry)
        assert r.keys_without_expiry == []
        assert r.cleanup.startswith("deleted")
    with redis.Redis.from_url(url) as client:
        prefix = reports[0].prefix.rsplit(":", 2)[0]
        assert list(client.scan_iter(match=f"{prefix}*")) == []


@pytest.mark.postgres
def test_verify_passes_on_postgres_and_cleans_up(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("backends.postgres")
    from tests.support.servers import require

    dsn = require(request.config.getoption("--postgres-dsn"), 5432, "PostgreSQL")
    reports = _verify_live(dsn, "backends.postgres")
    for r in reports:
        assert r.passed, (r.errors, r.disagreements[:3], r.hammers)
        assert r.cleanup.startswith("deleted"), r.cleanup


def test_over_admitting_backend_is_a_real_backend() -> None:
    store = OverAdmittingBackend(every=2)
    assert isinstance(store, Backend)
    algorithm: Algorithm = FixedWindow("1/hour")
    outcomes = [
        store.decide(algorithm, "k", 1, 1_700_000_000_000_000, True).allowed for _ in range(5)
    ]
    assert outcomes == [True, False, True, False, True]


@pytest.mark.redis
def test_redis_fallbacks_find_keys_without_ttl_and_delete_by_prefix(
    request: pytest.FixtureRequest,
) -> None:
    pytest.importorskip("backends.redis")
    redis = pytest.importorskip("redis")
    from limits_core.urls import backend_from_url
    from tests.support.servers import require

    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    prefix = f"limits-core-test-fallback:{random.getrandbits(32):08x}*[?]:"  # glob characters
    store = backend_from_url(url, prefix=prefix)
    with redis.Redis.from_url(url) as client:
        try:
            client.set(f"{prefix}immortal", 1)
            client.set(f"{prefix}mortal", 1, px=60_000)
            client.set(prefix.replace("*", "x") + "neighbour", 1, px=60_000)  # not ours
            assert keys_without_expiry(store, prefix) == [f"{prefix}immortal"]
            assert purge_prefix(store, prefix) == f"deleted 2 keys under {prefix!r}"
            assert client.exists(prefix.replace("*", "x") + "neighbour")
        finally:
            client.delete(prefix.replace("*", "x") + "neighbour", f"{prefix}immortal")
            store.close()
