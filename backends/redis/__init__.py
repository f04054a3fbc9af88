"""Redis and Redis Cluster backends: each algorithm is one atomic Lua script.

:class:`RedisBackend` (redis-py) and :class:`AsyncRedisBackend` (``redis.asyncio``) run
scripts assembled from the fragments in ``lua/`` (one per algorithm, shipped as package data)
with EVALSHA, sending a script whole (EVAL) only when Redis answers NOSCRIPT. Decisions
requested together (``decide_many``, or concurrently on an event loop: coalescing) share
pipelines. Importing this package does not import redis-py; constructing a backend does, and a
missing redis-py raises :class:`~limits_core.ConfigurationError` naming
``pip install 'limits-core[redis]'``.
"""

from backends.redis._async import AsyncRedisBackend
from backends.redis._coalesce import CoalescingStats
from backends.redis._plan import DEFAULT_PREFIX
from backends.redis._sync import RedisBackend

__all__ = ["DEFAULT_PREFIX", "AsyncRedisBackend", "CoalescingStats", "RedisBackend"]
