"""The synchronous PostgreSQL backend, on psycopg 3 and psycopg_pool."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from backends.postgres.batch import decode_many
from backends.postgres.common import (
    BATCH_KINDS,
    DEFAULT_SCHEMA,
    DEFAULT_TABLE,
    Layout,
    check_batch_size,
    check_options,
    decode,
)
from backends.postgres.errors import (
    MISSING_SCHEMA_STATES,
    Redactor,
    missing_driver,
    translate_psycopg,
)
from backends.postgres.idle import IdleConnections
from backends.postgres.plans import Plans
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    LimitsCoreError,
)

__all__ = ["PostgresBackend"]

logger = logging.getLogger("limits_core.postgres")

_SETTING_NAME = re.compile(r"[a-z_][a-z0-9_.]*\Z")


def _options(server_settings: dict[str, str]) -> str:
    """``server_settings`` as libpq's ``options`` (``-c name=value``, spaces escaped)."""
    parts = []
    for name, value in server_settings.items():
        if not isinstance(name, str) or not _SETTING_NAME.match(name):
            raise ConfigurationError(f"not a PostgreSQL setting name: {name!r}")
        escaped = str(value).replace("\\", "\\\\").replace(" ", "\\ ")
        parts.append(f"-c {name}={escaped}")
    return " ".join(parts)


class PostgresBackend:
    """Rate-limit state in PostgreSQL, for :class:`~limits_core.Limiter`, via psycopg 3.

    The synchronous twin of :class:`~backends.postgres.AsyncPostgresBackend`: the same SQL
    functions, the same table, the same decisions. Each decision is one call of the
    algorithm's PL/pgSQL function (one round trip, prepared on each connection at first use);
    the row lock serializes each key. Thread-safe: threads share the pool. Between calls the
    backend keeps the idle connections of a pool it created at hand, outside the pool; they
    go back to it whenever a thread waits for one, and when :attr:`pool` is read.

    Args:
        dsn: ``postgresql://user:password@host:port/db`` or a libpq ``key=value`` string; or
            give ``pool``.
        pool: an existing ``psycopg_pool.ConnectionPool`` to use instead (never closed by this
            backend). Create it with ``kwargs={"autocommit": True}``: otherwise each decision
            also sends a COMMIT.
        prefix, schema, table, unlogged, create_schema, pool_size, pool_timeout: as for
            :class:`~backends.postgres.AsyncPostgresBackend`.
        prepare_threshold: psycopg's ``prepare_threshold`` for the pool's connections
            (default 5). Decisions run as prepared statements from their first use whatever
            the number; None disables prepared statements altogether, as PgBouncer needs in
            transaction pooling mode.
        server_settings: session settings, e.g. ``{"synchronous_commit": "off"}``.

    :meth:`purge_expired` deletes expired rows; run it periodically (a thread, cron, or
    pg_cron: ``SELECT cron.schedule('limits-core-purge', '* * * * *',
    $$SELECT limits_core.limits_state_purge_expired(NULL, 10000)$$)``).
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
        prepare_threshold: int | None = 5,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ConfigurationError("give PostgresBackend either a dsn or a pool")
        if dsn is not None and not isinstance(dsn, str):
            raise ConfigurationError(f"dsn must be a str, got {type(dsn).__name__}")
        check_options(prefix=prefix, pool_size=pool_size, pool_timeout=pool_timeout)
        if prepare_threshold is not None and (
            isinstance(prepare_threshold, bool)
            or not isinstance(prepare_threshold, int)
            or prepare_threshold < 0
        ):
            raise ConfigurationError(
                f"prepare_threshold must be an int >= 0 or None, got {prepare_threshold!r}"
            )
        try:
            import psycopg
            import psycopg_pool
        except ImportError as exc:
            raise missing_driver(exc.name or "psycopg") from None
        self._psycopg = psycopg
        # PostgreSQL's own $n placeholders, as in the shared .sql files.
        self._cursor: Any = psycopg.RawCursor
        self._psycopg_pool = psycopg_pool
        self._layout = Layout(schema, table, unlogged)
        self._statements = self._layout.statements()
        self._prefix = prefix
        self._create_schema = bool(create_schema)
        self._redactor = Redactor(dsn)
        self._dsn = dsn or ""  # unused when a pool is given
        connect_options: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": prepare_threshold,
            "connect_timeout": max(1, round(pool_timeout)),
        }
        if server_settings:
            connect_options["options"] = _options(server_settings)
        self._connect_options = connect_options
        self._pool_size = pool_size
        self._pool_timeout = float(pool_timeout)
        # psycopg prepares a statement once it ran prepare_threshold times; True prepares it
        # on first use, None leaves it to the connection (never, with a None threshold).
        self._prepare: bool | None = True if prepare_threshold is not None else None
        self._pool: Any = pool
        self._owns_pool = pool is None
        self._ready = False
        self._closed = False
        self._start_lock = threading.Lock()
        self._checking = threading.Lock()
        self._plans = Plans(self._statements, prefix)
        self._calls = self._plans.calls  # read directly on the hot path
        # A cursor per pool connection, reused by every decision on it: a new cursor would
        # rebuild psycopg's adapter caches each time, a good part of a decision's client time.
        # Replaced (never changed in place) under the lock, so readers need none.
        self._cursors: dict[Any, Any] = {}
        self._cursors_lock = threading.Lock()
        # Connections kept out of a pool this backend created (a caller's pool is shared:
        # its connections go back at once); set with the pool, by _start.
        self._idle: IdleConnections | None = None
        self._take: Any = None  # (timeout) -> a connection
        self._give: Any = None  # (connection) -> None, after a call that raised nothing

    def __repr__(self) -> str:
        return (
            f"PostgresBackend({self._redactor.shown}, "
            f"table={self._layout.qualified_table}, prefix={self._prefix!r})"
        )

    @property
    def layout(self) -> Layout:
        """The schema, table and functions this backend uses."""
        return self._layout

    @property
    def pool(self) -> Any:
        """The psycopg_pool pool, or None before first use (with every connection this
        backend keeps idle returned to it)."""
        if self._idle is not None:
            self._idle.drain()
        return self._pool

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        if cost > call.max_cost:
            cost = call.max_cost
        pool = self._pool if self._ready else self._start()
        try:
            connection = self._take(self._pool_timeout)
            try:
                cursor = self._cursors.get(connection) or self._new_cursor(connection)
                # binary: psycopg parses the reply's int array faster than its text form.
                reply = cursor.execute(
                    call.sql,
                    (call.argument(key), cost, now_us, consume, *call.args),
                    prepare=self._prepare,
                    binary=True,
                ).fetchone()[0]
                if not connection.autocommit:
                    connection.commit()
            except BaseException:
                pool.putconn(connection)  # the pool rolls back, or replaces a broken one
                raise
            self._give(connection)
        except Exception as exc:
            raise self._translate(exc) from None
        return call.decode(reply)

    def refund(self, algorithm: Algorithm, key: str, amount: int, now_us: int | None) -> Decision:
        """Give ``amount`` back to ``key`` in one function call (see :meth:`Limiter.refund
        <limits_core.Limiter.refund>`); a key with no row stays without."""
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        row = self._execute(call.refund_sql, call.refund_args(key, amount, now_us))
        return call.decode(row[0])

    def acquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        call = self._plans.lease(algorithm)
        row = self._execute(call.acquire_sql, call.acquire_args(key, lease_id, cost, now_us))
        return decode(row[0], call.limit)

    def release(self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None) -> bool:
        call = self._plans.lease(algorithm)
        return bool(self._execute(call.release_sql, call.release_args(key, lease_id, now_us))[0])

    def decide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``requests`` (``(key, cost)`` pairs) in one statement: one round trip, one
        transaction; the decisions come back in request order, and requests on one key are
        applied in their order, each seeing the ones before it. Costs above the limit are
        capped as :meth:`decide` caps them. A policy or a concurrency limit is decided one
        request at a time."""
        if algorithm.kind not in BATCH_KINDS:
            return [self.decide(algorithm, key, cost, now_us, consume) for key, cost in requests]
        call = self._plans.batch(algorithm)
        if not requests:
            return []
        sql, args = call.for_requests(requests, now_us, consume)
        row = self._execute(sql, args)
        return decode_many(row[0], call.limit)

    def reset(self, algorithm: Algorithm, key: str) -> None:
        call = self._calls.get(algorithm.namespace) or self._plans.call(algorithm)
        self._execute(call.reset, (call.argument(key),))

    def purge_expired(self, *, batch_size: int = 10_000, now_us: int | None = None) -> int:
        """Delete every row whose ``expires_at`` has passed, ``batch_size`` rows per
        statement (each its own short transaction); return how many were deleted.

        Expired rows no longer affect any decision, so purging changes none; it only bounds
        the table's size. ``now_us`` defaults to the server's clock.
        """
        batch_size = check_batch_size(batch_size)
        total = 0
        while True:
            row = self._execute(self._statements.purge, (now_us, batch_size))
            deleted = int(row[0])
            total += deleted
            if deleted < batch_size:
                return total

    def create_schema(self) -> None:
        """Create (or update) the schema objects now, under the advisory lock; idempotent."""
        with self._session() as connection:
            self._create(connection)

    def close(self) -> None:
        """Close the pool this backend created; idempotent."""
        self._closed = True
        self._ready = False
        self._cursors = {}
        if self._idle is not None:
            self._idle.close()
        pool = self._pool
        if pool is not None and self._owns_pool:
            self._pool = None
            pool.close(timeout=self._pool_timeout)

    # -- internals ----------------------------------------------------------------------------

    def _new_cursor(self, connection: Any) -> Any:
        """The cursor decisions use on ``connection`` (a connection the pool just opened),
        dropping those of the connections it has closed since."""
        cursor = self._cursor(connection)
        with self._cursors_lock:
            cursors = {c: cur for c, cur in self._cursors.items() if not c.closed}
            cursors[connection] = cursor
            self._cursors = cursors
        return cursor

    def _translate(self, exc: BaseException) -> LimitsCoreError:
        if getattr(exc, "sqlstate", None) in MISSING_SCHEMA_STATES:
            self._ready = False  # dropped under us: check (and create) it again next time
        error = translate_psycopg(exc, self._redactor)
        if (
            isinstance(error, BackendUnavailable)
            and not isinstance(exc, self._psycopg_pool.PoolTimeout)
            and self._pool is not None
        ):
            self._check_idle_connections(self._pool)
        return error

    def _check_idle_connections(self, pool: Any) -> None:
        """After a lost connection, test the pool's idle connections and replace the dead
        ones. A restart or failover kills them all, and psycopg only notices when one is
        used; checking them now costs this already-failed call a round trip per idle
        connection instead of failing one later call per dead connection."""
        if not self._checking.acquire(blocking=False):
            return  # another thread is checking
        if self._idle is not None:
            self._idle.drain()  # to check them too
        try:
            pool.check()
        except Exception as exc:  # the server may still be down: the next call will tell
            logger.debug("limits-core: checking pool connections failed: %r", exc)
        finally:
            self._checking.release()

    def _execute(self, sql: str, params: tuple[Any, ...]) -> Any:
        pool = self._pool if self._ready else self._start()
        try:
            connection = self._take(self._pool_timeout)
            try:
                cursor = self._cursor(connection).execute(sql, params)
                row = cursor.fetchone() if cursor.description else None
                if not connection.autocommit:
                    connection.commit()
            except BaseException:
                pool.putconn(connection)
                raise
            self._give(connection)
            return row
        except Exception as exc:
            raise self._translate(exc) from None

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """A connection for setup work: from the pool once it exists, otherwise a direct one,
        so that a wrong DSN or a server that is down fails at once with the driver's reason
        (a pool would only report that no connection came in time)."""
        if self._closed:
            raise BackendError("this PostgresBackend is closed")
        try:
            if self._pool is not None:
                with self.pool.connection(self._pool_timeout) as connection:
                    yield connection
            else:
                with self._psycopg.connect(self._dsn, **self._connect_options) as connection:
                    yield connection
        except Exception as exc:
            raise self._translate(exc) from None

    def _create(self, connection: Any) -> None:
        with connection.transaction():
            self._cursor(connection).execute(self._statements.lock, self._layout.lock_key)
            connection.execute(self._layout.ddl())

    def _start(self) -> Any:
        with self._start_lock:
            if not self._ready:
                if self._create_schema:
                    with self._session() as connection:
                        row = (
                            self._cursor(connection)
                            .execute(self._statements.check, (self._layout.qualified_table,))
                            .fetchone()
                        )
                        if row[0] != self._layout.fingerprint:
                            self._create(connection)
                if self._pool is None:
                    if self._closed:
                        raise BackendError("this PostgresBackend is closed")
                    self._pool = self._psycopg_pool.ConnectionPool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        timeout=self._pool_timeout,
                        kwargs=self._connect_options,
                        open=False,
                        name=f"limits-core {self._layout.qualified_table}",
                    )
                    self._pool.open(wait=False)
                if self._take is None:
                    if self._owns_pool:
                        self._idle = IdleConnections(self._pool)
                        self._take, self._give = self._idle.take, self._idle.give
                    else:
                        self._take, self._give = self._pool.getconn, self._pool.putconn
                self._ready = True
            return self._pool
