"""The asyncio Redis backend: a thin shell over ``redis.asyncio``; the twin of ``_sync.py``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from backends.redis._base import RedisBackendBase, first_error, pool_size
from backends.redis._batch import VIA_CLIENT, BatchRun, Outcome, Route, pack
from backends.redis._coalesce import Call, Coalescer, CoalescingStats
from backends.redis._plan import DEFAULT_PREFIX
from backends.redis._scripts import LuaScript
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError

#: Default cap on the decisions of one coalesced batch.
MAX_BATCH = 128

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
            Scripts go straight to a plain client's pooled connections (a batch to each
            cluster node's), never resent after a timeout; a cluster client runs single
            scripts and redirected ones through its ``execute_command`` (as a
            ``single_connection_client`` does every script), so give it
            ``retry=Retry(NoBackoff(), 0)``: redis-py resends a command after a timeout by
            default, which could count a hit twice (a ``RuntimeWarning`` says so).
        prefix: starts every key, to isolate applications sharing one Redis (default
            ``"limits-core:"``); it must not contain ``{`` or ``}``.
        socket_timeout: seconds to wait for a reply, or for all the replies of a batch
            (default 1.0; ``None`` waits forever).
        connect_timeout: seconds to wait for a connection (default 1.0).
        coalesce: send the decisions requested concurrently on the event loop together, in
            one pipeline per server (per node on a cluster), on the loop's next iteration
            (default ``True``). Each decision is still its own atomic script.
        max_batch: the most decisions in one coalesced pipeline (default 128); more
            concurrent requests make more pipelines, sent in parallel.
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
    whole once more, which is safe because Redis refused to run it. In a batch, every call left
    without a reply raises ``BackendUnavailable`` (those answered get their decisions), only
    the calls Redis refused with ``NOSCRIPT`` are sent again, and a caller cancelled before its
    batch is sent is left out of it.
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
        coalesce: bool = True,
        max_batch: int = MAX_BATCH,
        **options: Any,
    ) -> None:
        if not isinstance(coalesce, bool):
            raise ConfigurationError(f"coalesce must be True or False, got {coalesce!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigurationError(f"max_batch must be a positive int, got {max_batch!r}")
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
        self._coalescer = Coalescer(self._run, max_batch) if coalesce else None
        self._submit = None if self._coalescer is None else self._coalescer.submit
        self._stale = False

    @property
    def coalescing(self) -> bool:
        """Whether concurrent decisions are sent together (``coalesce=``)."""
        return self._coalescer is not None

    @property
    def stats(self) -> CoalescingStats:
        """Coalesced batches so far: sizes and latencies (all zero when not coalescing)."""
        return CoalescingStats() if self._coalescer is None else self._coalescer.stats

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

    def abind(
        self, algorithm: Algorithm
    ) -> Callable[[str, int, int | None, bool], Awaitable[Decision]]:
        """:meth:`adecide` for ``algorithm`` alone, which :class:`~limits_core.AsyncLimiter`
        calls on every decision: the plan is found once, here, and a coalesced call returns
        its batch's future itself, without a coroutine of its own."""
        submit = self._submit
        if submit is None or type(self).adecide is not AsyncRedisBackend.adecide:
            return partial(self.adecide, algorithm)
        try:
            plan = self._plan(algorithm)
        except ConfigurationError:
            return partial(self.adecide, algorithm)  # which raises it on the first call
        command = plan.command

        def decide(key: str, cost: int, now_us: int | None, consume: bool) -> Awaitable[Decision]:
            return submit(plan, command(key, now_us, cost, consume))

        return decide

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        plan = self._plans.get(id(algorithm))
        if plan is None or plan.algorithm is not algorithm:
            plan = self._plan(algorithm)
        command = plan.command(key, now_us, cost, consume)
        submit = self._submit
        if submit is not None:
            return await submit(plan, command)
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

    async def adecide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order, in one pipeline (one per node on a
        cluster), apart from any coalesced batch; each is still one atomic script. If any
        fails, the first error is raised: calls before it may have been applied, and a call
        whose reply was lost is never resent."""
        plan = self._plan(algorithm)
        calls = [(plan, plan.command(key, now_us, cost, consume)) for key, cost in requests]
        return first_error(await self._run(calls)) if calls else []

    async def _run(self, calls: Sequence[Call]) -> list[Outcome | None]:
        """Decide a batch of calls: the outcome of each, in order (see ``_batch``)."""
        try:
            if not self._ready or self._stale:
                await self._refresh()
            async with self._slots:
                run = BatchRun(calls, self._loaded, self._route, self._errors)
                while sends := run.next_round():
                    if len(sends) == 1:
                        ((route, commands),) = sends.items()
                        await self._pipeline(run, route, commands)
                    else:
                        await asyncio.gather(*(self._pipeline(run, r, c) for r, c in sends.items()))
        except self._caught as exc:
            return [self._translate(exc, self._address) for _ in calls]
        return run.outcomes

    async def _refresh(self) -> None:
        """Initialize the client, or reload a cluster's topology after a node failed."""
        if not self._ready:
            await self._initialize()
        elif self._stale:
            self._stale = False
            self._nodes.clear()
            await self._client.nodes_manager.initialize()

    async def _pipeline(self, run: BatchRun, route: Route, commands: list[tuple[Any, ...]]) -> None:
        """Send ``commands`` to ``route`` and hand their replies (an error reply as its
        exception) to ``run``, with the connection's failure if it failed before the end."""
        replies: list[Any] = []
        try:
            if route is VIA_CLIENT:
                for command in commands:
                    try:
                        replies.append(await self._execute(*command))
                    except self._reply_error as exc:
                        replies.append(exc)
            elif route == "":
                assert self._direct is not None
                pool, args = self._direct
                connection = await pool.get_connection(*args)
                try:
                    await self._exchange(connection, commands, replies)
                finally:
                    await pool.release(connection)
            else:
                node = self._nodes[route]
                connection = node.acquire_connection()
                try:
                    await self._exchange(connection, commands, replies)
                finally:
                    node.release(connection)
        except self._caught as exc:
            if route is not VIA_CLIENT and route != "":
                self._stale = True  # the node may have failed over: reload the slots
            run.take(route, replies, exc)
        else:
            run.take(route, replies, None)

    async def _exchange(
        self, connection: Any, commands: list[tuple[Any, ...]], replies: list[Any]
    ) -> None:
        # A connection that fails mid-read is closed by redis-py, never reused.
        encoder = connection.encoder
        await connection.send_packed_command(
            pack(commands, encoder.encoding, encoder.encoding_errors)
        )
        reply_error, read = self._reply_error, connection.read_response
        # One deadline for the batch's replies, which come together, rather than one timer per
        # reply: redis-py's timer costs more than reading a reply. (math.inf: no timer of its
        # own; a read cut short by ours closes the connection all the same.)
        try:
            async with asyncio.timeout(connection.socket_timeout):
                for _ in commands:
                    try:
                        replies.append(await read(timeout=math.inf))
                    except reply_error as exc:
                        replies.append(exc)
        except TimeoutError:
            raise self._timeout(
                f"Timeout reading from {connection.host}:{connection.port}"
            ) from None

    async def arefund(
        self, algorithm: Algorithm, key: str, amount: int, now_us: int | None
    ) -> Decision:
        """Give ``amount`` back to ``key`` in one script call (see :meth:`AsyncLimiter.refund
        <limits_core.AsyncLimiter.refund>`)."""
        plan = self._refund_plan(algorithm)
        return plan.decode(
            await self._call_script(plan.script, plan.refund_command(key, now_us, amount))
        )

    async def aacquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        plan = self._lease_plan(algorithm)
        reply = await self._call_script(plan.script, plan.acquire(key, now_us, lease_id, cost))
        return plan.decode(reply)

    async def arelease(
        self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None
    ) -> bool:
        plan = self._lease_plan(algorithm)
        reply = await self._call_script(plan.script, plan.release(key, now_us, lease_id))
        return bool(reply[0] == 1)

    async def _call_script(self, script: LuaScript, command: tuple[Any, ...]) -> Any:
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
        """Wait for the batches in flight, then close the client if this backend created it;
        idempotent."""
        if self._coalescer is not None:
            await self._coalescer.drain()
        if self._owns_client and not self._closed:
            self._closed = True
            await self._client.aclose()
