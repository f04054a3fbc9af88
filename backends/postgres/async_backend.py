"""The asyncio PostgreSQL backend, on asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from backends.postgres.batch import decode_many
from backends.postgres.coalescer import Coalescer, CoalescingStats
from backends.postgres.common import (
    BATCH_KINDS,
    DEFAULT_SCHEMA,
    DEFAULT_TABLE,
    Layout,
    check_batch_size,
    check_max_batch,
    check_options,
    check_seconds,
    decode,
)
from backends.postgres.errors import (
    MISSING_SCHEMA_STATES,
    Redactor,
    is_statement_error,
    missing_driver,
    translate_asyncpg,
)
from backends.postgres.gate import PoolGate
from backends.postgres.plans import Plans
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError, LimitsCoreError

__all__ = ["AsyncPostgresBackend"]

logger = logging.getLogger("limits_core.postgres")

#: Name of the background purge task (``asyncio.Task.get_name()``).
PURGE_TASK_NAME = "limits-core postgres purge"


async def _keep_session(connection: Any) -> None:
    """Pool ``reset`` hook that leaves the session as it is.

    asyncpg's default reset sends ``RESET ALL; UNLISTEN *; ...`` on every release: a second
    round trip per decision. Our statements leave no session state behind (no SET, no LISTEN,
    advisory locks only at transaction level), so there is nothing to reset.
    """


class AsyncPostgresBackend:
    """Rate-limit state in PostgreSQL, for :class:`~limits_core.AsyncLimiter`, via asyncpg.

    Each decision is one statement (one round trip, a prepared statement cached per
    connection): a call of the algorithm's PL/pgSQL function, or for the fixed window and the
    token bucket a plain upsert that falls back to it. The statement locks the key's row, so
    concurrent decisions on one key are serialized by the row lock alone: no table locks, no
    lost updates at READ COMMITTED. The schema (see ``limits-core db sql``) is created on first
    use under an advisory lock, so processes starting together are safe.

    Args:
        dsn: ``postgresql://user:password@host:port/db``; or give ``pool``.
        pool: an existing ``asyncpg.Pool`` to use instead (this backend never closes it).
            Create it with ``reset=`` a no-op coroutine to save the round trip asyncpg's
            default reset makes on each release.
        prefix: prepended to every stored key, to isolate applications sharing a table.
        schema, table: where the state lives (defaults ``limits_core.limits_state``); lower-case
            identifiers, validated, then quoted.
        unlogged: create the table ``UNLOGGED``: faster writes (no WAL), but PostgreSQL
            empties it after a crash and does not replicate it, so counters reset after a crash
            or failover and the limiter fails open until they refill. Applies when the table
            is created. The default is a logged table.
        create_schema: create the schema on first use when it is missing (default). With
            ``False`` it must exist already (``limits-core db init``).
        pool_size: connections in the pool this backend creates.
        pool_timeout: seconds to wait for a free pool connection (and for connecting) before
            raising :class:`~limits_core.BackendUnavailable`.
        command_timeout: seconds a statement may run before the decision fails with
            :class:`~limits_core.BackendUnavailable`; None to wait forever.
        statement_cache_size: asyncpg's prepared-statement cache per connection. Set ``0``
            behind PgBouncer in transaction pooling mode, where a prepared statement may land
            on another server connection.
        purge_interval: run :meth:`purge_expired` every this many seconds in a background
            task while the backend is open (cancelled by :meth:`aclose`). Alternatively,
            schedule the function with pg_cron::

                SELECT cron.schedule('limits-core-purge', '* * * * *',
                    $$SELECT limits_core.limits_state_purge_expired(NULL, 10000)$$);

        purge_batch_size: rows deleted per statement by the background purge.
        server_settings: session settings for the pool's connections, e.g.
            ``{"synchronous_commit": "off"}`` (a crash may then forget the last fraction of a
            second of hits, in exchange for commits that do not wait for the disk).
        coalesce: coalesce concurrent decisions into batch statements (default): the
            decisions made while the event loop is busy go out together on the loop's next
            iteration, one round trip and one commit per batch, so throughput no longer
            stops at one round trip per decision and per connection. An idle system sends
            each decision at once, alone. ``False`` sends every decision as its own statement.
            :attr:`stats` reports the batches.
        max_batch: most decisions in one coalesced statement. Small enough that under
            load several batches are in flight at once, the server deciding one while this
            process prepares the next.

    Errors: connection failures, shutdowns, timeouts and a full pool raise
    :class:`~limits_core.BackendUnavailable` (password masked); a decision whose connection
    died in flight is never retried, since it may have been counted. Other database errors
    raise :class:`~limits_core.BackendError`. A coalesced batch is one transaction: when it
    fails, each of its decisions raises the error, and none of them was counted unless the
    connection was lost after the commit.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        prefix: str = "",
        schema: str = DEFAULT_SCHEMA,
        table: str = DEFAULT_TABLE,
        unlogged: bool = False,
        create_schema: bool = True,
        pool_size: int = 10,
        pool_timeout: float = 5.0,
        command_timeout: float | None = 5.0,
        statement_cache_size: int = 100,
        purge_interval: float | None = None,
        purge_batch_size: int = 10_000,
        server_settings: dict[str, str] | None = None,
        coalesce: bool = True,
        max_batch: int = 25,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ConfigurationError("give AsyncPostgresBackend either a dsn or a pool")
        if dsn is not None and not isinstance(dsn, str):
            raise ConfigurationError(f"dsn must be a str, got {type(dsn).__name__}")
        check_options(prefix=prefix, pool_size=pool_size, pool_timeout=pool_timeout)
        if (
            isinstance(statement_cache_size, bool)
            or not isinstance(statement_cache_size, int)
            or statement_cache_size < 0
        ):
            raise ConfigurationError(
                f"statement_cache_size must be an int >= 0, got {statement_cache_size!r}"
            )
        try:
            import asyncpg
        except ImportError:
            raise missing_driver("asyncpg") from None
        self._asyncpg = asyncpg
        self._layout = Layout(schema, table, unlogged)
        self._statements = self._layout.statements()
        self._prefix = prefix
        self._create_schema = bool(create_schema)
        self._dsn = dsn
        self._redactor = Redactor(dsn)
        self._pool_options: dict[str, Any] = {
            "min_size": 1,
            "max_size": pool_size,
            "timeout": pool_timeout,
            "command_timeout": check_seconds(command_timeout, "command_timeout", optional=True),
            "statement_cache_size": statement_cache_size,
            "server_settings": dict(server_settings or {}),
            "reset": _keep_session,
            # Idle connections stay open: otherwise asyncpg arms and cancels a timer on every
            # release and acquire.
            "max_inactive_connection_lifetime": 0,
        }
        self._pool_timeout = float(pool_timeout)
        self._purge_interval = check_seconds(purge_interval, "purge_interval", optional=True)
        self._purge_batch_size = check_batch_size(purge_batch_size)
        self._purge_task: asyncio.Task[None] | None = None
        self._pool: Any = pool
        self._owns_pool = pool is None
        self._gate = (
            PoolGate(pool_size, self._pool_timeout, release=self._give_back)
            if pool is None
            else None
        )
        self._ready = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._plans = Plans(self._statements, prefix)
        self._calls = self._plans.calls  # read directly on the hot path
        if not isinstance(coalesce, bool):
            raise ConfigurationError(f"coalesce must be a bool, got {coalesce!r}")
        self._coalescer = (
            Coalescer(self._plans.batch, self._run_started, check_max_batch(max_batch))
            if coalesce
            else None
        )

    def __repr__(self) -> str:
        return (
            f"AsyncPostgresBackend({self._redactor.shown}, "
            f"table={self._layout.qualified_table}, prefix={self._prefix!r})"
        )

    @property
    def layout(self) -> Layout:
        """The schema, table and functions this backend uses."""
        return self._layout

    @property
    def pool(self) -> Any:
        """The asyncpg pool, or None before first use."""
        return self._pool

    @property
    def coalescing(self) -> bool:
        """Whether concurrent decisions are coalesced into batches (``coalesce=``)."""
        return self._coalescer is not None

    @property
    def stats(self) -> CoalescingStats:
        """Batches coalesced so far: how many, their sizes and latencies (all zero when
        coalescing is off)."""
        return self._coalescer.stats() if self._coalescer is not None else CoalescingStats()

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        if self._coalescer is not None and algorithm.kind in BATCH_KINDS:
            if not self._ready:
                await self._start()
            return await self._coalescer.decide(algorithm, key, cost, now_us, consume)
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        if cost > call.max_cost:
            cost = call.max_cost
        pool = self._pool if self._ready else await self._start()
        connection = await self._acquire(pool)
        gate = self._gate
        handed = False
        try:
            reply = await connection.fetchval(
                call.sql, call.argument(key), cost, now_us, consume, *call.args
            )
            # Straight to the next waiting task, if any: the pool's release and acquire cost
            # more than the rest of the call around the statement.
            handed = gate is not None and gate.hand_over(connection)
            if not handed:
                await pool.release(connection)
        except BaseException as exc:
            await self._release(pool, connection, exc)
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise
        finally:
            if gate is not None and not handed:
                gate.leave()
        return call.decode(reply)

    async def arefund(
        self, algorithm: Algorithm, key: str, amount: int, now_us: int | None
    ) -> Decision:
        """Give ``amount`` back to ``key`` in one function call (see
        :meth:`AsyncLimiter.refund <limits_core.AsyncLimiter.refund>`)."""
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        reply = await self._execute(call.refund_sql, *call.refund_args(key, amount, now_us))
        return call.decode(reply)

    async def aacquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        call = self._plans.lease(algorithm)
        reply = await self._execute(
            call.acquire_sql, *call.acquire_args(key, lease_id, cost, now_us)
        )
        return decode(reply, call.limit)

    async def arelease(
        self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None
    ) -> bool:
        call = self._plans.lease(algorithm)
        return bool(
            await self._execute(call.release_sql, *call.release_args(key, lease_id, now_us))
        )

    async def adecide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``requests`` (``(key, cost)`` pairs) in one statement: one round trip, one
        transaction; the decisions come back in request order, and requests on one key are
        applied in their order, each seeing the ones before it. Costs above the limit are
        capped as :meth:`adecide` caps them. A policy or a concurrency limit is decided one
        request at a time."""
        if algorithm.kind not in BATCH_KINDS:
            return [
                await self.adecide(algorithm, key, cost, now_us, consume) for key, cost in requests
            ]
        call = self._plans.batch(algorithm)
        if not requests:
            return []
        sql, args = call.for_requests(requests, now_us, consume)
        reply = await self._execute(sql, *args)
        return decode_many(reply, call.limit)

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        await self._execute(call.reset, call.argument(key))

    async def purge_expired(self, *, batch_size: int = 10_000, now_us: int | None = None) -> int:
        """Delete every row whose ``expires_at`` has passed, ``batch_size`` rows per
        statement (each its own short transaction); return how many were deleted.

        Expired rows no longer affect any decision, so purging changes none; it only bounds
        the table's size. ``now_us`` defaults to the server's clock.
        """
        batch_size = check_batch_size(batch_size)
        total = 0
        while True:
            deleted: int = await self._execute(self._statements.purge, now_us, batch_size)
            total += deleted
            if deleted < batch_size:
                return total

    async def create_schema(self) -> None:
        """Create (or update) the schema objects now, under the advisory lock; idempotent."""

        async def create(connection: Any) -> None:
            async with connection.transaction():
                await connection.execute(self._statements.lock, *self._layout.lock_key)
                await connection.execute(self._layout.ddl())

        pool = self._pool if self._pool is not None else await self._open_pool()
        await self._run(pool, create)

    async def aclose(self) -> None:
        """Stop the background purge and close the pool this backend created; idempotent."""
        self._closed = True
        self._ready = False
        if self._coalescer is not None:
            await self._coalescer.drain(self._pool_timeout)
        task, self._purge_task = self._purge_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        pool = self._pool
        if pool is not None and self._owns_pool:
            self._pool = None
            try:
                await asyncio.wait_for(pool.close(), timeout=self._pool_timeout)
            except Exception:
                pool.terminate()
        if self._gate is not None:
            self._gate.close()

    # -- internals ----------------------------------------------------------------------------

    async def _run_started(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """:meth:`_run` on the pool, starting the backend first if needed."""
        pool = self._pool if self._ready else await self._start()
        return await self._run(pool, work)

    def _translate(self, exc: BaseException) -> LimitsCoreError:
        if getattr(exc, "sqlstate", None) in MISSING_SCHEMA_STATES:
            self._ready = False  # dropped under us: check (and create) it again next time
        return translate_asyncpg(exc, self._redactor)

    async def _execute(self, sql: str, *args: Any) -> Any:
        pool = self._pool if self._ready else await self._start()
        return await self._run(pool, lambda connection: connection.fetchval(sql, *args))

    async def _run(self, pool: Any, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """``await work(connection)`` on a pool connection, with errors translated."""
        connection = await self._acquire(pool)
        try:
            result = await work(connection)
            await pool.release(connection)
        except BaseException as exc:
            await self._release(pool, connection, exc)
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise
        finally:
            if self._gate is not None:
                self._gate.leave()
        return result

    async def _acquire(self, pool: Any) -> Any:
        """A pool connection, after waiting at most about ``pool_timeout`` for one.

        On the pool this backend created, the gate bounds the wait (and the caller leaves the
        gate once it has released the connection), and may hand over a connection straight
        from the task that used it last; on a caller's pool, which others may be
        using too, asyncio.timeout() does.
        """
        gate = self._gate
        try:
            if gate is None:
                async with asyncio.timeout(self._pool_timeout):
                    return await pool.acquire()
            if not gate.try_enter():
                handed = await gate.enter()
                if handed is not None:
                    if not handed.is_closed():
                        return handed
                    await self._give_back(handed)  # the pool replaces it
        except Exception as exc:
            raise self._translate(exc) from None
        try:
            return await pool.acquire()
        except BaseException as exc:
            gate.leave()
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise

    async def _give_back(self, connection: Any) -> None:
        """Release a connection handed over to a task cancelled before it could use it."""
        try:
            await self._pool.release(connection)
        except Exception as exc:
            logger.debug("limits-core: releasing a connection failed: %r", exc)

    async def _release(self, pool: Any, connection: Any, error: BaseException) -> None:
        """Give ``connection`` back to the pool after ``error``, ending it first when the
        error may have left it in an unknown state (anything but an error the server reported,
        e.g. a connection lost mid-statement): the pool then opens a fresh one. A cancelled
        call goes back as is: asyncpg finishes cancelling its statement on release."""
        if isinstance(error, Exception) and not (
            isinstance(error, self._asyncpg.PostgresError) and is_statement_error(error)
        ):
            # A connection that asyncpg saw close has already left the pool by itself.
            with contextlib.suppress(self._asyncpg.InterfaceError):
                connection.terminate()
        try:
            await pool.release(connection)
        except Exception as exc:
            # The decision (if any) stands; asyncpg has already ended this connection.
            logger.debug("limits-core: releasing a connection failed: %r", exc)

    async def _open_pool(self) -> Any:
        if self._closed:
            raise BackendError("this AsyncPostgresBackend is closed")
        if self._pool is None:
            try:
                async with asyncio.timeout(self._pool_timeout):
                    self._pool = await self._asyncpg.create_pool(self._dsn, **self._pool_options)
            except Exception as exc:
                raise self._translate(exc) from None
        return self._pool

    async def _start(self) -> Any:
        async with self._start_lock:
            pool = await self._open_pool()
            if not self._ready:
                if self._create_schema:
                    check, table = self._statements.check, self._layout.qualified_table
                    current = await self._run(pool, lambda c: c.fetchval(check, table))
                    if current != self._layout.fingerprint:
                        await self.create_schema()
                self._ready = True
                if self._purge_interval is not None and self._purge_task is None:
                    self._purge_task = asyncio.create_task(
                        self._purge_forever(self._purge_interval), name=PURGE_TASK_NAME
                    )
            return pool

    async def _purge_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = await self.purge_expired(batch_size=self._purge_batch_size)
            except LimitsCoreError as exc:
                logger.warning("limits-core: background purge failed: %s", exc)
            else:
                if deleted:
                    logger.debug("limits-core: purged %d expired rows", deleted)
