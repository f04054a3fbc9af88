"""The PostgreSQL schema: validated names, creation on first use, idempotence, concurrent
creation from several processes, recreation after a drop, lazy drivers."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.common import Layout
from limits_core import AsyncLimiter, BackendError, ConfigurationError, Limiter
from tests.support.postgres_fixtures import drop_layout, random_table, sql
from tests.support.postgres_workers import create_schema

#: The functions of a table: one per algorithm and its refund, a policy's step, reset and refund,
#: the leases of a concurrency limit, the purge and the batch of many decisions.
KINDS = (
    "fixed_window",
    "sliding_log",
    "token_bucket",
    "sliding_window_counter",
    "gcra",
    "leaky_bucket",
)
FUNCTIONS = (
    *KINDS,
    *(f"{kind}_refund" for kind in KINDS),
    "policy",
    "policy_reset",
    "policy_refund",
    "concurrency",
    "concurrency_release",
    "purge_expired",
    "batch",
)

BAD_NAMES = ["", "A", "Users", "a-b", 'a"b', "a;drop table x", "1abc", "x" * 41, "é", " a", None, 7]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_schema_and_table_names_are_validated(name: object) -> None:
    for option in ("schema", "table"):
        with pytest.raises(ConfigurationError):
            Layout(**{option: name})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            PostgresBackend("postgresql://h/db", **{option: name})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            AsyncPostgresBackend("postgresql://h/db", **{option: name})  # type: ignore[arg-type]


def test_ddl_quotes_every_name_and_fills_every_placeholder() -> None:
    layout = Layout(schema="s_1", table="t_1", unlogged=True)
    ddl = layout.ddl()
    assert "@" not in ddl
    assert 'CREATE SCHEMA IF NOT EXISTS "s_1";' in ddl
    assert 'CREATE UNLOGGED TABLE IF NOT EXISTS "s_1"."t_1"' in ddl
    for name in FUNCTIONS:
        assert f'FUNCTION "s_1"."t_1_{name}"(' in ddl
    assert "UNLOGGED" not in Layout(schema="s_1", table="t_1").ddl()
    script = layout.ddl_script()
    assert script.startswith("BEGIN;\nSELECT pg_advisory_xact_lock(")
    assert script.rstrip().endswith("COMMIT;")


def test_a_backend_accepts_only_supported_algorithms() -> None:
    class Other(FixedWindow):
        pass

    backend = PostgresBackend("postgresql://h/db")
    with pytest.raises(
        ConfigurationError,
        match="FixedWindow, GCRA, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket",
    ):
        backend.decide(Other("1/s"), "k", 1, None, True)


def _functions(dsn: str, layout: Layout) -> dict[str, str]:
    """The table's functions and the transaction id that last wrote each."""
    rows = sql(
        dsn,
        "SELECT proname, xmin::text FROM pg_proc "
        "WHERE pronamespace = %s::regnamespace AND proname LIKE %s",
        layout.schema,
        f"{layout.table}\\_%",
    )
    return dict(rows)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_schema_is_created_on_first_use_then_left_alone(postgres_dsn: str, pg_table: str) -> None:
    layout = Layout(table=pg_table)
    assert sql(postgres_dsn, "SELECT to_regclass(%s)", layout.qualified_table) == [(None,)]
    with Limiter(FixedWindow("2/s"), PostgresBackend(postgres_dsn, table=pg_table)) as limiter:
        assert limiter.hit("k").allowed
    created = _functions(postgres_dsn, layout)
    assert sorted(created) == sorted(f"{pg_table}_{n}" for n in FUNCTIONS)
    # A second process finds the fingerprint in place and rewrites nothing.
    with Limiter(TokenBucket("2/s"), PostgresBackend(postgres_dsn, table=pg_table)) as limiter:
        assert limiter.hit("k").allowed
    assert _functions(postgres_dsn, layout) == created
    # An explicit create_schema() runs the DDL again; it is idempotent.
    backend = PostgresBackend(postgres_dsn, table=pg_table)
    backend.create_schema()
    backend.create_schema()
    backend.close()
    assert _functions(postgres_dsn, layout).keys() == created.keys()
    assert _functions(postgres_dsn, layout) != created


@pytest.mark.postgres
async def test_async_backend_creates_the_schema_on_first_use(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    async with AsyncLimiter(SlidingLog("2/s"), backend) as limiter:
        assert (await limiter.hit("k")).allowed
        await backend.create_schema()
    assert sorted(_functions(postgres_dsn, Layout(table=pg_table))) == sorted(
        f"{pg_table}_{n}" for n in FUNCTIONS
    )


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    yield schema
    sql(postgres_dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
@pytest.mark.parametrize("unlogged", [False, True])
def test_schema_table_and_unlogged_options(
    postgres_dsn: str, pg_schema: str, unlogged: bool
) -> None:
    backend = PostgresBackend(postgres_dsn, schema=pg_schema, table="state", unlogged=unlogged)
    with Limiter(FixedWindow("1/s"), backend) as limiter:
        assert limiter.hit("k").allowed
        assert not limiter.hit("k").allowed
    rows = sql(
        postgres_dsn,
        "SELECT relpersistence FROM pg_class WHERE oid = to_regclass(%s)",
        f'"{pg_schema}"."state"',
    )
    assert rows == [("u" if unlogged else "p",)]


@pytest.mark.postgres
def test_two_tables_in_one_schema_are_independent(postgres_dsn: str, pg_table: str) -> None:
    other = random_table()
    try:
        with (
            Limiter(FixedWindow("1/h"), PostgresBackend(postgres_dsn, table=pg_table)) as one,
            Limiter(FixedWindow("1/h"), PostgresBackend(postgres_dsn, table=other)) as two,
        ):
            assert one.hit("k").allowed
            assert two.hit("k").allowed
            assert not one.hit("k").allowed
    finally:
        drop_layout(postgres_dsn, Layout(table=other))


@pytest.mark.postgres
def test_prefixes_isolate_applications_on_one_table(postgres_dsn: str, pg_table: str) -> None:
    algorithm = FixedWindow("1/h")
    with (
        Limiter(algorithm, PostgresBackend(postgres_dsn, table=pg_table, prefix="a:")) as a,
        Limiter(algorithm, PostgresBackend(postgres_dsn, table=pg_table, prefix="b:")) as b,
    ):
        assert a.hit("k").allowed
        assert b.hit("k").allowed
        assert not a.hit("k").allowed
    keys = sql(postgres_dsn, f'SELECT key FROM limits_core."{pg_table}" ORDER BY key')
    assert keys == [(f"a:{algorithm.namespace}:k",), (f"b:{algorithm.namespace}:k",)]


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_creating_the_schema_at_once_all_succeed(
    postgres_dsn: str, pg_table: str
) -> None:
    processes = 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=create_schema, args=(postgres_dsn, pg_table, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    # One key, limit 1 per day: exactly one process was admitted.
    assert sum(allowed for _, allowed in outcomes) == 1


@pytest.mark.postgres
def test_a_dropped_schema_is_created_again(postgres_dsn: str, pg_table: str) -> None:
    with Limiter(FixedWindow("5/h"), PostgresBackend(postgres_dsn, table=pg_table)) as limiter:
        assert limiter.hit("k").remaining == 4
        drop_layout(postgres_dsn, Layout(table=pg_table))
        with pytest.raises(BackendError, match="missing"):
            limiter.hit("k")
        assert limiter.hit("k").remaining == 4


@pytest.mark.postgres
async def test_async_backend_creates_a_dropped_schema_again(
    postgres_dsn: str, pg_table: str
) -> None:
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table)
    async with AsyncLimiter(FixedWindow("5/h"), backend) as limiter:
        assert (await limiter.hit("k")).remaining == 4
        drop_layout(postgres_dsn, Layout(table=pg_table))
        with pytest.raises(BackendError, match="missing"):
            await limiter.hit("k")
        assert (await limiter.hit("k")).remaining == 4


@pytest.mark.postgres
async def test_without_create_schema_a_missing_schema_is_an_error(
    postgres_dsn: str, pg_table: str
) -> None:
    sync = PostgresBackend(postgres_dsn, table=pg_table, create_schema=False)
    with Limiter(FixedWindow("1/s"), sync) as limiter, pytest.raises(BackendError, match="db init"):
        limiter.hit("k")
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, create_schema=False)
    async with AsyncLimiter(FixedWindow("1/s"), backend) as alimiter:
        with pytest.raises(BackendError, match="db init"):
            await alimiter.hit("k")
    assert sql(postgres_dsn, "SELECT to_regclass(%s)", Layout(table=pg_table).qualified_table) == [
        (None,)
    ]


@pytest.mark.parametrize("module", ["asyncpg", "psycopg", "psycopg_pool"])
def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    kind = AsyncPostgresBackend if module == "asyncpg" else PostgresBackend
    with pytest.raises(ConfigurationError, match=r"pip install 'limits-core\[postgres\]'"):
        kind("postgresql://h/db")


def test_importing_the_backends_imports_no_driver() -> None:
    code = (
        "import sys, backends.postgres, limits_core.cli.db\n"
        "loaded = [m for m in ('asyncpg', 'psycopg', 'psycopg_pool') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.postgres
def test_a_function_of_an_earlier_result_type_is_replaced(postgres_dsn: str, pg_table: str) -> None:
    """CREATE OR REPLACE cannot change a result type: the DDL drops such a function first."""
    layout = Layout(table=pg_table)
    sql(postgres_dsn, 'CREATE SCHEMA IF NOT EXISTS "limits_core"')
    sql(
        postgres_dsn,
        f"CREATE FUNCTION {layout.function('fixed_window')}"
        "(text, bigint, bigint, boolean, bigint, bigint) RETURNS integer "
        "LANGUAGE sql AS 'SELECT 1'",
    )
    with Limiter(FixedWindow("1/h"), PostgresBackend(postgres_dsn, table=pg_table)) as limiter:
        assert limiter.hit("k").allowed
        assert not limiter.hit("k").allowed
