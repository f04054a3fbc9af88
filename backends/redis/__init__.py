"""Redis and Redis Cluster backends: each algorithm is one atomic Lua script.

:class:`RedisBackend` (redis-py) and :class:`AsyncRedisBackend` (``redis.asyncio``) run the
scripts in ``lua/`` (one per algorithm, shipped as package data) through redis-py ``Script``
objects: EVALSHA, reloaded after NOSCRIPT. Importing this package does not import redis-py;
constructing a backend does, and a missing redis-py raises
:class:`~limits_core.ConfigurationError` naming ``pip install 'limits-core[redis]'``.
"""

from backends.redis._async import AsyncRedisBackend
from backends.redis._plan import DEFAULT_PREFIX
from backends.redis._sync import RedisBackend

__all__ = ["DEFAULT_PREFIX", "AsyncRedisBackend", "RedisBackend"]
