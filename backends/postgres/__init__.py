"""PostgreSQL backends: :class:`AsyncPostgresBackend` (asyncpg) and :class:`PostgresBackend`
(psycopg 3), sharing one schema and one set of SQL functions.

Install the drivers with ``pip install 'limits-core[postgres]'``; importing this package
imports neither, each backend imports its driver when it is constructed.

**Schema.** One table (``limits_core.limits_state`` by default) holds one row per key, and one
PL/pgSQL function per algorithm (``limits_core.limits_state_fixed_window(...)``, ...) makes
each decision in one atomic step, in one round trip. The backends create it on first use, under
an advisory lock so that processes starting together are safe; ``limits-core db init`` creates
it ahead of time and ``limits-core db sql`` prints the DDL for teams who manage migrations.
A policy (several limits on one key) is decided by one more function, all or nothing, with one
row per limit.

**Batches.** ``PostgresBackend.decide_many()`` and ``AsyncPostgresBackend.adecide_many()``
decide many requests in one statement (the table's batch function: one round trip, one
transaction, row locks taken in key order so concurrent batches never deadlock), and the
async backend coalesces concurrent decisions into such batches by itself (``coalesce=True``,
the default; ``stats`` reports the batches).

**Time.** By default the functions read the server's ``clock_timestamp()``, so application
servers with skewed clocks agree. A limiter given a ``clock=`` sends its time instead.

**Expiry.** Every row carries ``expires_at`` (µs): after it, the row affects no decision.
Decisions never depend on it; ``purge_expired()`` deletes expired rows in bounded batches. Run
it periodically: the async backend's ``purge_interval=`` option does so in a background task,
or schedule the table's purge function with pg_cron::

    SELECT cron.schedule('limits-core-purge', '* * * * *',
        $$SELECT limits_core.limits_state_purge_expired(NULL, 10000)$$);

**UNLOGGED tables** (``unlogged=True``) skip the write-ahead log: writes are cheaper, but after
a crash PostgreSQL empties the table, and replicas never see it. Counters then restart from
zero after a crash or a failover, so the limiter fails open until they refill. The default is
a logged table.

**PgBouncer** in transaction pooling mode cannot keep named prepared statements on one server
connection: pass ``statement_cache_size=0`` to :class:`AsyncPostgresBackend` or
``prepare_threshold=None`` to :class:`PostgresBackend`. Each decision is a single statement in
its own transaction, so transaction pooling is otherwise safe.
"""

from backends.postgres.async_backend import AsyncPostgresBackend
from backends.postgres.sync_backend import PostgresBackend

__all__ = ["AsyncPostgresBackend", "PostgresBackend"]
