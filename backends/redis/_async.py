"""The asyncio Redis backend: a thin shell over ``redis.asyncio``; the twin of ``_sync.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from backends.redis._base import RedisBackendBase, pool_size
from backends.redis._plan import DEFAULT_PREFIX
from backends.redis._scripts import LuaScript
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision

__all__ = ["AsyncRedisBackend"]


class AsyncRedisBackend(RedisBackendBase):
    """Runs each algorithm as one atomic Lua script on Redis or Redis Cluster (``redis.asyncio``).

    Args:
        url: where Redis is. ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://...`` (TLS), ``unix:///path/to/redis.sock[?db=N]``, or
            ``redis+cluster://[[user]:password@]host:port`` (``rediss+cluster://`` for TLS)
            for a Redis Cluster reached through any one of its nodes. Query parameters are
            redis-py's (``?ssl_cert_reqs=none``...).
        client: instead of ``url``, an existing ``redis.asyncio.Redis`` or
            ``redis.asyncio.cluster.RedisCluster``. The backend never closes a client it was
            given.
            Scripts go straight to a plain client's pooled connections, never resent after
            a timeout; a cluster client (or a ``single_connection_client``) runs them through
            its ``execute_command``, so give it ``retry=Retry(NoBackoff(), 0)``: redis-py
            resends a command after a timeout by default, which could count a hit twice (a
            ``RuntimeWarning`` says so).
        prefix: starts every key, to isolate applications sharing one Redis (default
            ``"limits-core:"``); it must not contain ``{`` or ``}``.
        socket_timeout: seconds to wait for a reply (default 1.0; ``None`` waits forever).
        connect_timeout: seconds to wait for a connection (default 1.0).
        **options: more redis-py client options for a client built from ``url``
            (``max_connections``, ``ssl_ca_certs``, ``password``...).

    Keys are ``prefix + namespace + ":{" + user key + "}"``, with ``%``, ``{`` and ``}`` of the
    user key percent-encoded, so the hash tag is the user key whatever it contains and every
    Redis key of one decision lives in one cluster slot. A :class:`~limits_core.Policy` is one
    script over one key per limit, ``prefix + policy namespace + ":" + limit namespace + ":{"
    + user key + "}"``: all read and decided first, all written only if every limit admits.

    Time comes from the server (``TIME``) unless the limiter has a ``clock=``, whose time is
    then sent with each call. Decisions are computed from stored timestamps; key TTLs only
    reclaim memory.

    Errors: a refused connection or a timeout raises
    :class:`~limits_core.BackendUnavailable` (never retried: after a timeout the hit may or
    may not have been counted), any other Redis error :class:`~limits_core.BackendError`.
    A lost script cache (``SCRIPT FLUSH``, a restarted server) is handled by sending the script
    whole once more, which is safe because Redis refused to run it.
    """

    _asyncio = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float | None = 1.0,
        connect_timeout: float | None = 1.0,
        **options: Any,
    ) -> None:
        super().__init__(
            url,
            client=client,
            prefix=prefix,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            options=options,
        )
        # redis.asyncio's pools raise MaxConnectionsError instead of waiting once every
        # connection is busy (100 by default): queue the excess calls here instead.
        self._slots = asyncio.Semaphore(pool_size(self._client))
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._send = self._sender()

    def _sender(self) -> Callable[[tuple[Any, ...]], Awaitable[Any]]:
        """``await send(command) -> reply``: on a pooled connection when allowed, else through
        ``execute_command`` (see ``_connect.direct_pool``)."""
        if self._direct is None:
            execute = self._execute

            async def send_through_client(command: tuple[Any, ...]) -> Any:
                return await execute(*command)

            return send_through_client
        pool, args = self._direct
        get_connection, release = pool.get_connection, pool.release

        async def send(command: tuple[Any, ...]) -> Any:
            connection = await get_connection(*args)
            try:
                # Both calls close the connection on any failure (a cancellation included),
                # so it is never reused with a reply still in flight.
                await connection.send_command(*command)
                return await connection.read_response()
            finally:
                await release(connection)

        return send

    async def _initialize(self) -> None:
        # redis.asyncio's RedisCluster drops connections when many tasks make its very first
        # calls at once (each racing through topology discovery): let one task initialize it
        # before any script runs.
        async with self._ready_lock:
            if not self._ready:
                await self._client.initialize()
                self._ready = True

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        plan = self._plans.get(id(algorithm))
        if plan is None or plan.algorithm is not algorithm:
            plan = self._plan(algorithm)
        command = plan.command(key, now_us, cost, consume)
        try:
            if not self._ready:
                await self._initialize()
            async with self._slots:
                try:
                    reply = await self._send(command)
                except self._noscript:
                    # Redis refused to run the script, so nothing was counted: send it whole
                    # (EVAL also caches it), immune to another SCRIPT FLUSH in between.
                    reply = await self._send(("EVAL", plan.script.source, *command[2:]))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc
        return plan.decode(reply)

    async def aacquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        plan = self._lease_plan(algorithm)
        reply = await self._run(plan.script, plan.acquire(key, now_us, lease_id, cost))
        return plan.decode(reply)

    async def arelease(
        self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None
    ) -> bool:
        plan = self._lease_plan(algorithm)
        reply = await self._run(plan.script, plan.release(key, now_us, lease_id))
        return bool(reply[0] == 1)

    async def _run(self, script: LuaScript, command: tuple[Any, ...]) -> Any:
        """``command``'s reply, with the fallbacks and error translation of :meth:`adecide`."""
        try:
            if not self._ready:
                await self._initialize()
            async with self._slots:
                try:
                    return await self._send(command)
                except self._noscript:
                    return await self._send(("EVAL", script.source, *command[2:]))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        plan = self._plan(algorithm)
        try:
            if not self._ready:
                await self._initialize()
            await self._client.delete(*plan.keys(key))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc

    async def aclose(self) -> None:
        """Close the client if this backend created it; idempotent."""
        if self._owns_client and not self._closed:
            self._closed = True
            await self._client.aclose()
