"""Backends from URLs, for the command line and for configuration files.

=============================================  ==============================================
URL                                            backend
=============================================  ==============================================
``memory``                                     ``backends.memory.MemoryBackend()`` (one new,
                                               empty store per call; it serves both facades)
``redis://``, ``rediss://``, ``unix://``,      ``backends.redis.RedisBackend(url, prefix=...)``
``redis+cluster://``, ``rediss+cluster://``    or ``AsyncRedisBackend``
``postgresql://``, ``postgres://``             ``backends.postgres.PostgresBackend(dsn,
                                               prefix=...)`` or ``AsyncPostgresBackend``
=============================================  ==============================================

Backends are imported only when their URL is used, so this module imports no driver. An unknown
scheme, or a backend missing from this installation, raises
:class:`~limits_core.ConfigurationError`.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from limits_core.backend import AsyncBackend, Backend
from limits_core.errors import ConfigurationError

__all__ = ["SCHEMES", "async_backend_from_url", "backend_from_url", "mask_url"]

_REDIS = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_POSTGRES = ("postgresql", "postgres")
#: Every URL scheme understood, plus the bare word ``memory``.
SCHEMES = ("memory", *_REDIS, *_POSTGRES)

# (module, sync class, async class, extra to install) per family of schemes.
_FAMILIES = {
    "redis": ("backends.redis", "RedisBackend", "AsyncRedisBackend", "redis"),
    "postgres": ("backends.postgres", "PostgresBackend", "AsyncPostgresBackend", "postgres"),
}


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and reports."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


def _family(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"a backend URL must be a non-empty str, got {url!r}")
    if url.strip().lower() in ("memory", "memory://"):
        return "memory"
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _REDIS:
        return "redis"
    if scheme in _POSTGRES:
        return "postgres"
    shown = mask_url(url)
    raise ConfigurationError(
        f"unknown backend URL {shown!r}: use 'memory', redis://, rediss://, unix://, "
        "redis+cluster:// or postgresql://"
    )


def _backend(url: str, prefix: str | None, asynchronous: bool) -> Any:
    family = _family(url)
    if family == "memory":
        from backends.memory import MemoryBackend

        return MemoryBackend()
    module_name, sync_name, async_name, extra = _FAMILIES[family]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or module_name
        if missing == module_name or missing.startswith(module_name + "."):
            raise ConfigurationError(
                f"{mask_url(url)!r} needs the {module_name} backend, which this installation "
                "of limits-core does not include"
            ) from None
        raise ConfigurationError(
            f"{mask_url(url)!r} needs {missing!r}: pip install 'limits-core[{extra}]'"
        ) from None
    cls = getattr(module, async_name if asynchronous else sync_name, None)
    if cls is None:
        raise ConfigurationError(
            f"{module_name} has no {async_name if asynchronous else sync_name}"
        )
    options = {} if prefix is None else {"prefix": prefix}
    return cls(url, **options)


def backend_from_url(url: str, *, prefix: str | None = None) -> Backend:
    """A synchronous backend for ``url`` (see the module's table); ``prefix`` isolates
    applications sharing one store (ignored by ``memory``, where each call is a new store)."""
    backend: Backend = _backend(url, prefix, asynchronous=False)
    return backend


def async_backend_from_url(url: str, *, prefix: str | None = None) -> AsyncBackend:
    """The asyncio twin of :func:`backend_from_url`."""
    backend: AsyncBackend = _backend(url, prefix, asynchronous=True)
    return backend
