"""PostgreSQL fixtures: the server's DSN, throwaway tables, and the backend factories that
``tests/conftest.py`` puts in the backend matrix (``postgres_limiters``,
``postgres_async_limiters``).

Every test gets its own randomly named table (and functions), dropped at teardown, so tests
running at the same time on the shared server never see each other's state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.common import Layout
from limits_core import AsyncLimiter, BackendUnavailable, Clock, Limiter
from limits_core.algorithm import Algorithm
from tests.support.servers import require

T = TypeVar("T")


def random_table() -> str:
    """A fresh table name, unique across processes."""
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_layout(dsn: str, layout: Layout) -> None:
    """Remove a test's table and functions."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(layout.drop_ddl())


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own; return its rows (if any)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="session")
def postgres_dsn(request: pytest.FixtureRequest) -> str:
    """The test server's DSN; skips (locally) or fails (CI) when it does not answer."""
    dsn: str = request.config.getoption("--postgres-dsn")
    return require(dsn, 5432, "PostgreSQL")


@pytest.fixture
def pg_table(postgres_dsn: str) -> Iterator[str]:
    """A random table name in the default schema; the table and its functions are dropped
    after the test."""
    table = random_table()
    yield table
    drop_layout(postgres_dsn, Layout(table=table))


@pytest.fixture
def postgres_limiters(postgres_dsn: str, pg_table: str) -> Iterator[Any]:
    """``make(algorithm, clock=None, **options) -> Limiter`` on :class:`PostgresBackend`.

    Each limiter gets a prefix of its own, so two limiters of one test start from empty state,
    as with a fresh in-memory backend.
    """
    backends: list[PostgresBackend] = []

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> Limiter:
        options.setdefault("table", pg_table)
        options.setdefault("prefix", f"p{len(backends)}:")
        backend = PostgresBackend(postgres_dsn, **options)
        backends.append(backend)
        return Limiter(algorithm, backend, clock=clock)

    yield make
    for backend in backends:
        backend.close()


async def _async_limiters(dsn: str, table: str, coalesce: bool) -> AsyncIterator[Any]:
    backends: list[AsyncPostgresBackend] = []

    def make(algorithm: Algorithm, clock: Clock | None = None, **options: Any) -> AsyncLimiter:
        options.setdefault("table", table)
        options.setdefault("prefix", f"a{len(backends)}:")
        options.setdefault("coalesce", coalesce)
        backend = AsyncPostgresBackend(dsn, **options)
        backends.append(backend)
        return AsyncLimiter(algorithm, backend, clock=clock)

    yield make
    for backend in backends:
        await backend.aclose()


@pytest.fixture
async def postgres_async_limiters(postgres_dsn: str, pg_table: str) -> AsyncIterator[Any]:
    """``make(algorithm, clock=None, **options) -> AsyncLimiter`` on
    :class:`AsyncPostgresBackend` (coalescing, its default), one prefix per limiter."""
    async for make in _async_limiters(postgres_dsn, pg_table, coalesce=True):
        yield make


@pytest.fixture
async def postgres_async_limiters_uncoalesced(
    postgres_dsn: str, pg_table: str
) -> AsyncIterator[Any]:
    """As ``postgres_async_limiters``, with ``coalesce=False``: a statement per decision."""
    async for make in _async_limiters(postgres_dsn, pg_table, coalesce=False):
        yield make


def eventually(call: Callable[[], T], within: float = 60.0) -> T:
    """``call()`` once it stops raising BackendUnavailable (a server coming back)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def aeventually(call: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """The asyncio twin of :func:`eventually`."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
