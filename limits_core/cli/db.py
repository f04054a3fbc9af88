"""``limits-core db``: create the PostgreSQL schema, or print its DDL for your own migrations."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from backends.postgres.common import DEFAULT_SCHEMA, DEFAULT_TABLE, Layout
from limits_core.errors import LimitsCoreError

_DSN_ENV = "LIMITS_CORE_POSTGRES_DSN"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="create the PostgreSQL schema, or print its DDL",
        description=(
            "Manage the PostgreSQL schema of the PostgreSQL backends: one table and one "
            "function per algorithm. The backends create it on first use; these commands are "
            "for teams who create it ahead of time or through their own migrations."
        ),
    )
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    init = commands.add_parser(
        "init",
        help="create (or update) the schema in a database; idempotent",
        description="Create or update the schema objects, under an advisory lock.",
    )
    init.add_argument(
        "--dsn",
        default=os.environ.get(_DSN_ENV),
        help=f"postgresql://user:password@host:port/db (default: ${_DSN_ENV})",
    )
    _layout_arguments(init)
    init.set_defaults(run=_init)

    sql = commands.add_parser(
        "sql",
        help="print the DDL (one transaction, ready for psql or a migration tool)",
        description="Print the statements `db init` runs, without connecting anywhere.",
    )
    _layout_arguments(sql)
    sql.set_defaults(run=_sql)


def _layout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schema", default=DEFAULT_SCHEMA, help=f"default {DEFAULT_SCHEMA}")
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"default {DEFAULT_TABLE}")
    parser.add_argument(
        "--unlogged",
        action="store_true",
        help="create an UNLOGGED table: faster, but emptied after a crash and not replicated",
    )


def _layout(args: argparse.Namespace) -> Layout | None:
    try:
        return Layout(args.schema, args.table, args.unlogged)
    except LimitsCoreError as exc:
        print(f"limits-core db: {exc}", file=sys.stderr)
        return None


def _sql(args: argparse.Namespace) -> int:
    layout = _layout(args)
    if layout is None:
        return 2
    sys.stdout.write(layout.ddl_script())
    return 0


def _init(args: argparse.Namespace) -> int:
    layout = _layout(args)
    if layout is None:
        return 2
    if not args.dsn:
        print(f"limits-core db init: give --dsn or set ${_DSN_ENV}", file=sys.stderr)
        return 2
    from backends.postgres.sync_backend import PostgresBackend

    try:
        backend = PostgresBackend(
            args.dsn, schema=layout.schema, table=layout.table, unlogged=layout.unlogged
        )
        try:
            backend.create_schema()
        finally:
            backend.close()
    except LimitsCoreError as exc:
        print(f"limits-core db init: {exc}", file=sys.stderr)
        return 1
    print(f"limits-core db init: {layout.qualified_table} and its functions are in place")
    return 0
