"""What ``limits-core bench`` times: limits-core's limiters, and peer libraries on the same
kind of store (``--peers``).

Peers, each compared with the limits-core algorithm of the same semantics:

=======================  ===============  ==========================================
peer                     compared with    stores
=======================  ===============  ==========================================
limits FixedWindow       fixed_window     memory, Redis, Redis Cluster (``limits``)
limits MovingWindow      sliding_log      memory, Redis, Redis Cluster
pyrate-limiter           sliding_log      memory, Redis (sync only)
throttled FixedWindow    fixed_window     memory, Redis (``throttled-py``)
throttled TokenBucket    token_bucket     memory, Redis
=======================  ===============  ==========================================

A peer runs only when its package is installed (``pip install 'limits-core[bench]'``), it
supports the store, and the algorithm it is compared with is selected; otherwise
:func:`peer_specs` says why it was skipped. No peer runs on PostgreSQL here.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from limits_core.benchmarking import Contender
from limits_core.limiter import AsyncLimiter, Limiter
from limits_core.rate import Rate
from limits_core.urls import async_backend_from_url, backend_from_url

__all__ = ["PEERS", "PeerSpec", "Setup", "aours", "cleanup", "family", "ours", "peer_specs"]


@dataclass(frozen=True)
class Setup:
    """Where and how contenders run."""

    url: str
    rate: Rate
    keys: int
    #: Starts every store key of this run (limits-core's prefix; peers' keys contain it).
    prefix: str


def family(url: str) -> str:
    """``"memory"``, ``"redis"``, ``"redis-cluster"`` or ``"postgres"``."""
    scheme = url.partition("://")[0].lower() if "://" in url else url.strip().lower()
    if scheme.endswith("+cluster"):
        return "redis-cluster"
    if scheme.startswith("redis") or scheme == "unix":
        return "redis"
    if scheme.startswith("postgres"):
        return "postgres"
    return "memory"


def _decision_allowed(decision: Any) -> bool:
    return bool(decision.allowed)


def ours(setup: Setup, kind: str, build: Callable[[Rate], Any]) -> Contender:
    """A limits-core :class:`Limiter` with algorithm ``kind`` on ``setup.url``."""
    store = backend_from_url(setup.url, prefix=setup.prefix)
    algorithm = build(setup.rate)
    limiter = Limiter(algorithm, store)
    name = f"limits-core {type(algorithm).__name__}"
    return Contender(
        name, hit=limiter.hit, allowed=_decision_allowed, close=store.close, kind=kind, ours=True
    )


async def aours(setup: Setup, kind: str, build: Callable[[Rate], Any]) -> Contender:
    """A limits-core :class:`AsyncLimiter` with algorithm ``kind`` on ``setup.url``."""
    store = async_backend_from_url(setup.url, prefix=setup.prefix)
    algorithm = build(setup.rate)
    limiter = AsyncLimiter(algorithm, store)
    name = f"limits-core {type(algorithm).__name__}"
    return Contender(
        name, ahit=limiter.hit, allowed=_decision_allowed, aclose=store.aclose, kind=kind, ours=True
    )


def cleanup(setup: Setup) -> list[str]:
    """Delete what a run wrote to a shared store: limits-core's keys (rows) under
    ``setup.prefix`` and, on Redis, the peers' keys, which all contain it. Say what was done."""
    from limits_core.verification import purge_prefix

    kind = family(setup.url)
    if kind == "memory":
        return []
    store: Any = backend_from_url(setup.url, prefix=setup.prefix)
    try:
        done = [purge_prefix(store, setup.prefix)]
        client = getattr(store, "client", None)  # redis-py's, for a single server or a cluster
        if kind.startswith("redis") and client is not None:
            keys = list(client.scan_iter(match=f"*{setup.prefix}*", count=1000))
            # One DEL per key: in a Redis Cluster the keys live in different slots.
            done.append(f"deleted {sum(client.delete(k) for k in keys)} peer keys")
    finally:
        store.close()
    return done


# -- peers ------------------------------------------------------------------------------------


def _limits_uri(setup: Setup, asynchronous: bool) -> str:
    uri = "memory://" if family(setup.url) == "memory" else setup.url
    if uri.startswith("unix://"):
        uri = "redis+unix://" + uri[len("unix://") :]
    return f"async+{uri}" if asynchronous else uri


def _limits(strategy: str) -> Callable[[Setup, bool], Contender]:
    def make(setup: Setup, asynchronous: bool) -> Contender:
        import limits
        import limits.aio.strategies
        from limits.storage import storage_from_string

        item = limits.parse(f"{setup.rate.limit} per {setup.rate.period:g} second")
        # "async+..." storage URIs give limits' asyncio storages.
        storage = storage_from_string(_limits_uri(setup, asynchronous))
        if asynchronous:
            astrategy = getattr(limits.aio.strategies, strategy)(storage)
            return Contender("", ahit=lambda key: astrategy.hit(item, key))
        sync = getattr(limits.strategies, strategy)(storage)
        return Contender("", hit=lambda key: sync.hit(item, key))

    return make


def _pyrate(setup: Setup, asynchronous: bool) -> Contender:
    import pyrate_limiter as pl

    rates = [pl.Rate(setup.rate.limit, max(1, round(setup.rate.period * 1000)))]
    if family(setup.url) == "memory":

        def new_bucket(factory: Any, key: str) -> Any:
            return factory.create(pl.InMemoryBucket, rates)
    else:
        import redis

        client = redis.Redis.from_url(setup.url)
        script = client.script_load(pl.buckets.redis_bucket.LuaScript.PUT_ITEM)

        def new_bucket(factory: Any, key: str) -> Any:
            return pl.RedisBucket(rates, client, f"{setup.prefix}pyrate:{key}", script)

    class PerKey(pl.BucketFactory):
        """One bucket per key: pyrate-limiter's Limiter routes every name to one bucket."""

        def __init__(self) -> None:
            self.buckets: dict[str, Any] = {}

        def wrap_item(self, name: str, weight: int = 1) -> Any:
            return pl.RateItem(name, time.time_ns() // 1_000_000, weight=weight)

        def get(self, item: Any) -> Any:
            bucket = self.buckets.get(item.name)
            if bucket is None:
                bucket = self.buckets[item.name] = new_bucket(self, item.name)
            return bucket

    limiter = pl.Limiter(PerKey())
    return Contender(
        "", hit=lambda key: limiter.try_acquire(key, blocking=False), close=limiter.close
    )


def _throttled(using: str) -> Callable[[Setup, bool], Contender]:
    def make(setup: Setup, asynchronous: bool) -> Contender:
        import throttled
        import throttled.asyncio

        lib: Any = throttled.asyncio if asynchronous else throttled
        quota = lib.per_duration(
            timedelta(seconds=setup.rate.period), setup.rate.limit, burst=setup.rate.limit
        )
        if family(setup.url) == "memory":
            store = lib.MemoryStore(options={"MAX_SIZE": max(1024, 2 * setup.keys)})
        else:
            store = lib.RedisStore(server=setup.url)
        limiter = lib.Throttled(using=using, quota=quota, store=store)
        if asynchronous:
            return Contender("", ahit=limiter.limit, allowed=_not_limited)
        return Contender("", hit=limiter.limit, allowed=_not_limited)

    return make


def _not_limited(result: Any) -> bool:
    return not result.limited


@dataclass(frozen=True)
class PeerSpec:
    """A peer library's contender, and where it can run."""

    name: str
    module: str  # the import name, to tell whether it is installed
    package: str  # what to pip install
    kind: str  # the limits-core algorithm it is compared with
    families: tuple[str, ...]
    make: Callable[[Setup, bool], Contender]  # (setup, asynchronous) -> Contender
    sync_only: bool = False

    def contender(self, setup: Setup, asynchronous: bool) -> Contender:
        contender = self.make(setup, asynchronous)
        contender.name, contender.kind = self.name, self.kind
        return contender

    async def acontender(self, setup: Setup) -> Contender:
        """Built inside the event loop: async clients bind to the running loop."""
        return self.contender(setup, True)


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec(
        "limits FixedWindow",
        "limits",
        "limits",
        "fixed_window",
        ("memory", "redis", "redis-cluster"),
        _limits("FixedWindowRateLimiter"),
    ),
    PeerSpec(
        "limits MovingWindow",
        "limits",
        "limits",
        "sliding_log",
        ("memory", "redis", "redis-cluster"),
        _limits("MovingWindowRateLimiter"),
    ),
    PeerSpec(
        "pyrate-limiter",
        "pyrate_limiter",
        "pyrate-limiter",
        "sliding_log",
        ("memory", "redis"),
        _pyrate,
        sync_only=True,
    ),
    PeerSpec(
        "throttled FixedWindow",
        "throttled",
        "throttled-py",
        "fixed_window",
        ("memory", "redis"),
        _throttled("fixed_window"),
    ),
    PeerSpec(
        "throttled TokenBucket",
        "throttled",
        "throttled-py",
        "token_bucket",
        ("memory", "redis"),
        _throttled("token_bucket"),
    ),
)


def peer_specs(
    kinds: list[str], store_family: str, asynchronous: bool
) -> tuple[list[PeerSpec], list[tuple[str, str]]]:
    """The peers to run for the selected algorithm ``kinds``, and ``(name, reason)`` for the
    peers skipped."""
    run, skipped = [], []
    for spec in PEERS:
        if spec.kind not in kinds:
            continue
        if importlib.util.find_spec(spec.module) is None:
            skipped.append((spec.name, f"not installed (pip install {spec.package})"))
        elif store_family not in spec.families:
            skipped.append((spec.name, f"does not support {store_family}"))
        elif asynchronous and spec.sync_only:
            skipped.append((spec.name, "asyncio not supported here; run with --concurrency 1"))
        else:
            run.append(spec)
    return run, skipped
