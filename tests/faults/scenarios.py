"""The faults of the suite, each on a server the suite starts itself on a free loopback port.

A scenario is a name, the store it hits, and a coroutine that runs it with the harness
(:func:`tests.faults.harness.run_fault`) and returns one result per ``on_error`` policy. The
shared servers (6379, 5432) are never touched: Redis scenarios start a fresh ``redis-server``
each, PostgreSQL scenarios share one throwaway cluster (``initdb`` is the slow part).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from backends.postgres import AsyncPostgresBackend
from backends.redis import AsyncRedisBackend
from limits_core import AsyncBackend
from tests.faults.harness import PolicyResult, run_fault
from tests.support.pg_cluster import PrivateCluster
from tests.support.postgres_fixtures import random_table, sql
from tests.support.redis_servers import RedisProcess

__all__ = ["SCENARIOS", "Scenario", "Servers", "pg_cluster", "servers"]

#: Redis: seconds to wait for a reply, and for a connection.
REDIS_TIMEOUT = 0.5
#: PostgreSQL: seconds to wait for a pool connection (and for connecting), and for a statement.
PG_TIMEOUT = 0.5
#: How long an outage lasts.
OUTAGE = 1.0
#: How long Redis stalls: longer than the worst wait the timeouts allow (see ``bound``).
STALL = 3.0

Run = Callable[["Servers"], Awaitable[list[PolicyResult]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    store: str  # "redis" or "postgres"
    run: Run
    #: The worst latency any call may show: the configured timeouts plus scheduling slack
    #: (the machine is a shared 2-core box). The stall itself lasts longer.
    bound: float
    #: The store keeps its state through the fault (False only for a Redis killed without
    #: persistence, whose counters are gone).
    keeps_state: bool = True
    #: The fault never makes a call fail (the backend absorbs it).
    no_errors: bool = False


class Servers:
    """Where the scenarios get their servers: a fresh Redis each, one PostgreSQL for all."""

    def __init__(self, root: Path, cluster: Callable[[], PrivateCluster]) -> None:
        self.root = root
        self._cluster = cluster

    @contextlib.asynccontextmanager
    async def redis(self) -> AsyncIterator[RedisProcess]:
        directory = self.root / f"redis-{uuid.uuid4().hex[:8]}"
        directory.mkdir()
        server = RedisProcess(directory)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)

    def postgres(self) -> PrivateCluster:
        return self._cluster()


def _redis_backends(server: RedisProcess) -> Callable[[str], AsyncBackend]:
    run = uuid.uuid4().hex[:8]

    def make(name: str) -> AsyncBackend:
        return AsyncRedisBackend(
            server.url,
            prefix=f"faults:{run}:{name}:",
            socket_timeout=REDIS_TIMEOUT,
            connect_timeout=REDIS_TIMEOUT,
        )

    return make


async def _redis_killed(servers: Servers) -> list[PolicyResult]:
    async with servers.redis() as server:

        async def inject() -> None:
            # SIGKILL: no shutdown, no save. The server has no persistence, so its counters go.
            process = server.process
            assert process is not None
            os.kill(server.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            await asyncio.sleep(OUTAGE)
            await asyncio.to_thread(server.start)

        return await run_fault(
            "Redis killed, restarted",
            _redis_backends(server),
            inject,
            configured_timeout=REDIS_TIMEOUT,
        )


async def _redis_paused(servers: Servers) -> list[PolicyResult]:
    async with servers.redis() as server:

        async def inject() -> None:
            pause_ms = int(STALL * 1000)
            with server.client() as admin:
                await asyncio.to_thread(admin.execute_command, "CLIENT", "PAUSE", pause_ms, "ALL")
            await asyncio.sleep(STALL)

        return await run_fault(
            f"Redis CLIENT PAUSE {STALL:g} s",
            _redis_backends(server),
            inject,
            configured_timeout=REDIS_TIMEOUT,
        )


async def _script_flush(servers: Servers) -> list[PolicyResult]:
    async with servers.redis() as server:

        async def inject() -> None:
            with server.client() as admin:
                for _ in range(6):
                    await asyncio.to_thread(admin.script_flush)
                    await asyncio.sleep(0.2)

        return await run_fault(
            "Redis SCRIPT FLUSH (x6)",
            _redis_backends(server),
            inject,
            configured_timeout=REDIS_TIMEOUT,
        )


def _pg_backends(cluster: PrivateCluster, application: str) -> Callable[[str], AsyncBackend]:
    table = random_table()

    def make(name: str) -> AsyncBackend:
        return AsyncPostgresBackend(
            cluster.dsn,
            table=table,
            prefix=f"{name}:",
            pool_size=4,
            pool_timeout=PG_TIMEOUT,
            command_timeout=PG_TIMEOUT,
            server_settings={"application_name": application},
        )

    return make


async def _pg_restarted(servers: Servers) -> list[PolicyResult]:
    cluster = servers.postgres()

    async def inject() -> None:
        await asyncio.to_thread(cluster.stop, "fast")
        await asyncio.sleep(OUTAGE / 2)  # pg_ctl itself takes a while on each side
        await asyncio.to_thread(cluster.start)

    return await run_fault(
        "PostgreSQL restarted (fast)",
        _pg_backends(cluster, f"faults-{uuid.uuid4().hex[:8]}"),
        inject,
        configured_timeout=PG_TIMEOUT,
    )


async def _pg_terminated(servers: Servers) -> list[PolicyResult]:
    cluster = servers.postgres()
    application = f"faults-{uuid.uuid4().hex[:8]}"
    query = (
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()"
    )

    async def inject() -> None:
        for _ in range(6):
            await asyncio.to_thread(sql, cluster.dsn, query, application)
            await asyncio.sleep(0.2)

    return await run_fault(
        "PostgreSQL connections terminated (x6)",
        _pg_backends(cluster, application),
        inject,
        configured_timeout=PG_TIMEOUT,
    )


#: Scheduling slack on a shared 2-core machine.
_SLACK = 0.5
#: A Redis call may connect (connect_timeout), then wait for the connection's handshake and
#: for its script's reply (socket_timeout each) while the server stalls.
REDIS_BOUND = 3 * REDIS_TIMEOUT + _SLACK
#: A PostgreSQL call waits for a pool connection (pool_timeout), then for its statement.
PG_BOUND = 2 * PG_TIMEOUT + _SLACK

SCENARIOS = [
    Scenario("redis-killed", "redis", _redis_killed, REDIS_BOUND, keeps_state=False),
    Scenario("redis-paused", "redis", _redis_paused, REDIS_BOUND),
    Scenario("redis-script-flush", "redis", _script_flush, REDIS_BOUND, no_errors=True),
    Scenario("postgres-restarted", "postgres", _pg_restarted, PG_BOUND),
    Scenario("postgres-terminated", "postgres", _pg_terminated, PG_BOUND),
]


@contextlib.contextmanager
def pg_cluster() -> Iterator[Callable[[], PrivateCluster]]:
    """A lazily started throwaway PostgreSQL cluster, destroyed on exit."""
    made: list[PrivateCluster] = []

    def get() -> PrivateCluster:
        if not made:
            cluster = PrivateCluster()
            cluster.start()
            made.append(cluster)
        return made[0]

    try:
        yield get
    finally:
        for cluster in made:
            cluster.destroy()


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Servers for running scenarios outside pytest (the report command)."""
    with tempfile.TemporaryDirectory(prefix="limits-core-faults-") as root, pg_cluster() as get:
        yield Servers(Path(root), get)
