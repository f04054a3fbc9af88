"""The synchronous Redis backend: a thin shell over redis-py's ``Redis`` or ``RedisCluster``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from backends.redis._base import RedisBackendBase, first_error
from backends.redis._batch import VIA_CLIENT, BatchRun, Route, pack
from backends.redis._connect import direct_pool
from backends.redis._plan import DEFAULT_PREFIX
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision

__all__ = ["RedisBackend"]


class RedisBackend(RedisBackendBase):
    """Runs each algorithm as one atomic Lua script on Redis or Redis Cluster (redis-py, sync).

    Args:
        url: where Redis is. ``redis://[[user]:password@]host[:port][/db]``,
            ``rediss://...`` (TLS), ``unix:///path/to/redis.sock[?db=N]``, or
            ``redis+cluster://[[user]:password@]host:port`` (``rediss+cluster://`` for TLS)
            for a Redis Cluster reached through any one of its nodes. Query parameters are
            redis-py's (``?ssl_cert_reqs=none``...).
        client: instead of ``url``, an existing ``redis.Redis`` or
            ``redis.cluster.RedisCluster``. The backend never closes a client it was given.
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
        self._send = self._sender()
        self._stale = False

    def _sender(self) -> Callable[[tuple[Any, ...]], Any]:
        """``send(command) -> reply``: on a pooled connection when allowed, else through
        ``execute_command`` (see ``_connect.direct_pool``)."""
        if self._direct is None:
            execute = self._execute
            return lambda command: execute(*command)
        pool, args = self._direct
        get_connection, release = pool.get_connection, pool.release

        def send(command: tuple[Any, ...]) -> Any:
            connection = get_connection(*args)
            try:
                # Both calls close the connection on any failure, so it is never reused
                # with a reply still in flight.
                connection.send_command(*command)
                return connection.read_response()
            finally:
                release(connection)

        return send

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        plan = self._plans.get(id(algorithm))
        if plan is None or plan.algorithm is not algorithm:
            plan = self._plan(algorithm)
        command = plan.command(key, now_us, cost, consume)
        try:
            try:
                reply = self._send(command)
            except self._noscript:
                # Redis refused to run the script, so nothing was counted: send it whole
                # (EVAL also caches it), immune to another SCRIPT FLUSH in between.
                reply = self._send(("EVAL", plan.script.source, *command[2:]))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc
        return plan.decode(reply)

    def decide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order, in one pipeline (one per node on a
        cluster); each is still one atomic script. If any fails, the first error is raised:
        calls before it may have been applied, and a call whose reply was lost is never
        resent."""
        plan = self._plan(algorithm)
        run = BatchRun(
            [(plan, plan.command(key, now_us, cost, consume)) for key, cost in requests],
            self._loaded,
            self._route,
            self._errors,
        )
        try:
            if self._stale:
                # A node failed in an earlier batch: it may have failed over.
                self._stale = False
                self._nodes.clear()
                self._client.nodes_manager.initialize()
            while sends := run.next_round():
                for route, commands in sends.items():
                    replies: list[Any] = []
                    try:
                        self._pipeline(route, commands, replies)
                    except self._caught as exc:
                        self._stale = route is not VIA_CLIENT and route != ""
                        run.take(route, replies, exc)
                    else:
                        run.take(route, replies, None)
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc
        return first_error(run.outcomes)

    def _pipeline(self, route: Route, commands: list[tuple[Any, ...]], replies: list[Any]) -> None:
        """Send ``commands`` to ``route`` and append their replies (an error reply as its
        exception); a connection failure raises, leaving the replies read so far."""
        if route is VIA_CLIENT:
            for command in commands:
                try:
                    replies.append(self._execute(*command))
                except self._reply_error as exc:
                    replies.append(exc)
            return
        if route == "":
            assert self._direct is not None
            pool, args = self._direct
        else:
            # A node's own client is a plain redis.Redis: its pool always qualifies.
            node_pool = direct_pool(self._client.get_redis_connection(self._nodes[route]))
            assert node_pool is not None
            pool, args = node_pool
        connection = pool.get_connection(*args)
        try:
            encoder = connection.encoder
            packed = pack(commands, encoder.encoding, encoder.encoding_errors)
            connection.send_packed_command([packed])
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except self._reply_error as exc:
                    replies.append(exc)
        finally:
            pool.release(connection)

    def refund(self, algorithm: Algorithm, key: str, amount: int, now_us: int | None) -> Decision:
        """Give ``amount`` back to ``key`` in one script call (see :meth:`Limiter.refund
        <limits_core.Limiter.refund>`)."""
        plan = self._plan(algorithm)
        command = plan.refund_command(key, now_us, amount)
        try:
            try:
                reply = self._send(command)
            except self._noscript:
                # As in decide(): Redis ran nothing, so the script is sent whole once.
                reply = self._send(("EVAL", plan.script.source, *command[2:]))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc
        return plan.decode(reply)

    def reset(self, algorithm: Algorithm, key: str) -> None:
        plan = self._plan(algorithm)
        try:
            self._client.delete(*plan.keys(key))
        except self._caught as exc:
            raise self._translate(exc, self._address) from exc

    def close(self) -> None:
        """Close the client if this backend created it; idempotent."""
        if self._owns_client and not self._closed:
            self._closed = True
            self._client.close()
