"""``limits-core db sql`` and ``limits-core db init``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from algorithms import FixedWindow
from backends.postgres import PostgresBackend
from backends.postgres.common import Layout
from limits_core import Limiter
from limits_core.cli import main
from tests.support.pg_cluster import free_port
from tests.support.postgres_fixtures import sql


def test_db_sql_prints_the_ddl_as_one_locked_transaction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "sql"]) == 0
    out = capsys.readouterr().out
    assert out == Layout().ddl_script()
    assert 'CREATE TABLE IF NOT EXISTS "limits_core"."limits_state"' in out
    assert main(["db", "sql", "--schema", "rl", "--table", "hits", "--unlogged"]) == 0
    out = capsys.readouterr().out
    assert 'CREATE UNLOGGED TABLE IF NOT EXISTS "rl"."hits"' in out
    assert 'FUNCTION "rl"."hits_token_bucket"(' in out


@pytest.mark.parametrize("option", ["--schema", "--table"])
def test_db_sql_rejects_unsafe_names(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "sql", option, 'x"; DROP TABLE users; --']) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lower-case letters" in captured.err


def test_db_sql_runs_as_a_console_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "limits_core", "db", "sql", "--table", "cli_check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert '"limits_core"."cli_check_fixed_window"' in result.stdout


@pytest.mark.postgres
def test_the_printed_ddl_creates_a_working_schema(postgres_dsn: str, pg_table: str) -> None:
    """What a migration tool would run: the backends then need no DDL rights."""
    import psycopg

    script = Layout(table=pg_table).ddl_script()
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(script)
    backend = PostgresBackend(postgres_dsn, table=pg_table, create_schema=False)
    with Limiter(FixedWindow("1/h"), backend) as limiter:
        assert limiter.hit("k").allowed
        assert not limiter.hit("k").allowed


@pytest.mark.postgres
def test_db_init_creates_the_schema(
    postgres_dsn: str, pg_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "init", "--dsn", postgres_dsn, "--table", pg_table, "--unlogged"]) == 0
    assert "in place" in capsys.readouterr().out
    rows = sql(
        postgres_dsn,
        "SELECT relpersistence FROM pg_class WHERE oid = to_regclass(%s)",
        Layout(table=pg_table).qualified_table,
    )
    assert rows == [("u",)]
    assert main(["db", "init", "--dsn", postgres_dsn, "--table", pg_table]) == 0  # idempotent


def test_db_init_reports_an_unreachable_server_with_the_password_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = f"postgresql://app:hunter2-secret@127.0.0.1:{free_port()}/db"
    assert main(["db", "init", "--dsn", dsn]) == 1
    err = capsys.readouterr().err
    assert "hunter2-secret" not in err
    assert "app:***@127.0.0.1" in err


def test_db_init_needs_a_dsn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIMITS_CORE_POSTGRES_DSN", raising=False)
    assert main(["db", "init"]) == 2
    assert "--dsn" in capsys.readouterr().err
