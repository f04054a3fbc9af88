"""Creating and describing redis-py clients; the only module that names redis-py's classes.

redis-py is imported here, lazily, when a backend is constructed: importing ``backends.redis``
imports no driver.

Retries. redis-py retries a command after a ``ConnectionError`` or ``TimeoutError`` by default
(``Retry(ExponentialWithJitterBackoff(), 10)`` in redis-py 6+, and ``RedisCluster`` has its own
retry loop). For a rate-limit script that is wrong: a timeout after the request was sent leaves
the outcome unknown, and sending EVALSHA again could count the hit twice. Every client this
module creates therefore gets ``Retry(NoBackoff(), 0)``: the error surfaces at once and the
backend raises ``BackendUnavailable``. The one retry that stays is the one in redis-py's
``Script.__call__``: it reloads the script and sends EVALSHA again only after a
``NoScriptError``, which the server returns *instead of* running the script, so nothing has
been counted yet. hiredis is used when installed because no ``parser_class`` is forced.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from limits_core.errors import ConfigurationError

__all__ = [
    "CLUSTER_SCHEMES",
    "SCHEMES",
    "check_timeout",
    "create_client",
    "describe_client",
    "import_redis",
    "mask_url",
    "warn_if_retrying",
]

SCHEMES = ("redis", "rediss", "unix")
#: ``redis+cluster://host:port`` is a Redis Cluster reached through one of its nodes.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

_INSTALL_HINT = "pip install 'limits-core[redis]'"


def import_redis() -> ModuleType:
    """redis-py, or a ``ConfigurationError`` naming the extra to install."""
    try:
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.cluster
    except ImportError as exc:
        raise ConfigurationError(
            f"the Redis backends need redis-py: {_INSTALL_HINT} ({exc})"
        ) from None
    return redis


def check_timeout(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds or None, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable URL>"


def _no_retry(redis: ModuleType, asyncio: bool) -> Any:
    from redis.backoff import NoBackoff

    retry_class = redis.asyncio.retry.Retry if asyncio else redis.retry.Retry
    return retry_class(NoBackoff(), 0)


def create_client(
    url: str,
    *,
    asyncio: bool,
    socket_timeout: float | None,
    connect_timeout: float | None,
    options: dict[str, Any],
) -> Any:
    """A new redis-py client for ``url`` that never retries a command (see the module doc)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"url must be a str, got {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (scheme not in SCHEMES and scheme not in CLUSTER_SCHEMES):
        raise ConfigurationError(
            f"unsupported Redis URL {mask_url(url)!r}: use redis://, rediss://, unix://, "
            "redis+cluster:// or rediss+cluster://"
        )
    redis = import_redis()
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": _no_retry(redis, asyncio),
        **options,
    }
    try:
        if scheme in CLUSTER_SCHEMES:
            cluster = redis.asyncio.cluster if asyncio else redis.cluster
            return cluster.RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **kwargs)
        client_class = redis.asyncio.Redis if asyncio else redis.Redis
        return client_class.from_url(url, **kwargs)
    except (ValueError, TypeError) as exc:
        message = f"invalid Redis URL or option for {mask_url(url)}: {exc}"
        raise ConfigurationError(message) from None
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        # The sync RedisCluster connects at once.
        from backends.redis._errors import translate

        raise translate(exc, mask_url(url)) from exc


def describe_client(client: Any) -> str:
    """A password-free address for messages: ``redis://host:port/db``, ``unix://path`` or
    ``redis+cluster://host:port``."""
    try:
        nodes_manager = getattr(client, "nodes_manager", None)
        if nodes_manager is not None:
            nodes = sorted(nodes_manager.startup_nodes)
            return "redis+cluster://" + ",".join(nodes)
        kwargs = client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
        scheme = "rediss" if "SSL" in client.connection_pool.connection_class.__name__ else "redis"
        host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
        return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"
    except Exception:  # a client we cannot introspect still works; only the message suffers
        return f"<{type(client).__name__}>"


def warn_if_retrying(client: Any) -> None:
    """Warn when a caller's client would resend a command after a timeout."""
    retry = getattr(client, "retry", None)  # cluster clients
    if retry is None:
        try:
            retry = client.get_retry()
        except Exception:
            return
    if retry is not None and retry.get_retries() != 0:
        warnings.warn(
            f"the given Redis client retries failed commands ({retry.get_retries()} retries): "
            "a retry after a timeout can count a hit twice. Create it with "
            "retry=Retry(NoBackoff(), 0) (redis.retry / redis.asyncio.retry).",
            RuntimeWarning,
            stacklevel=3,
        )
