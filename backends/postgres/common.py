"""What both PostgreSQL backends share: identifiers, SQL text, argument encoding, reply decoding.

The SQL lives in ``.sql`` files next to this module (package data, read with
:mod:`importlib.resources`). They name the schema objects through ``@name@`` placeholders that
only :class:`Layout` fills in, from identifiers it has validated against a strict pattern and
then quoted, so no unchecked text is ever formatted into SQL. Everything else (keys, costs,
times, algorithm parameters) travels as bound parameters.

The sync and async backends are thin shells around one call each: this module builds that call
(:func:`plan`) and decodes its reply, so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from algorithms import (
    GCRA,
    Concurrency,
    FixedWindow,
    LeakyBucket,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError
from limits_core.policy import Policy, combine

__all__ = [
    "BATCH_KINDS",
    "DEFAULT_SCHEMA",
    "DEFAULT_TABLE",
    "Call",
    "Layout",
    "LeaseCall",
    "PolicyCall",
    "check_identifier",
    "decode",
    "lease_plan",
    "plan",
]

DEFAULT_SCHEMA = "limits_core"
DEFAULT_TABLE = "limits_state"

#: Lower-case letters, digits and underscores, starting with a letter or underscore. Quoting
#: such a name never changes its meaning, and 40 characters leave room for the suffixes of the
#: derived names (``<table>_token_bucket``) within PostgreSQL's 63-byte limit.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}\Z")

#: The algorithms decided by a function of their own, which also has a ``<kind>_refund``.
_KINDS = (
    "fixed_window",
    "sliding_log",
    "token_bucket",
    "sliding_window_counter",
    "gcra",
    "leaky_bucket",
)
#: Every function of a table, each in the file of its name.
_FUNCTIONS = (
    *_KINDS,
    "purge_expired",
    "concurrency",
    "concurrency_release",
    "policy",
    "policy_reset",
    "policy_refund",
    "batch",
)
_DDL_FILES = ("schema.sql", *(f"{name}.sql" for name in _FUNCTIONS))
#: The refund functions, each defined in its algorithm's file, after the deciding one.
_REFUNDS = tuple(f"{kind}_refund" for kind in _KINDS)
#: The kinds the batch function decides (see ``batch.py``); anything else, a policy included,
#: is decided one request at a time.
BATCH_KINDS = frozenset(_KINDS)
#: The kinds decided by a plain statement (``<kind>_statement.sql``) rather than a function
#: call: a PL/pgSQL call costs the server more than the statement inside it.
_STATEMENTS = frozenset({"fixed_window", "token_bucket"})
#: The kinds whose batches of hits on distinct keys at one time have a plain statement too
#: (``<kind>_batch_statement.sql``).
_BATCH_STATEMENTS = frozenset({"fixed_window"})

#: First half of the advisory lock key taken while creating the schema (the second half is a
#: CRC of the table's qualified name): "lcdb" in ASCII.
_LOCK_CLASS = 0x6C636462

#: Version of the schema's shape; a change to the SQL files changes the fingerprint as well.
_SCHEMA_VERSION = 1


def check_identifier(value: object, what: str) -> str:
    """Return ``value`` if it is a safe SQL identifier; raise ConfigurationError otherwise."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigurationError(
            f"{what} must be 1-40 lower-case letters, digits or underscores, starting with a "
            f"letter or underscore; got {value!r}"
        )
    return value


def _quote(identifier: str) -> str:
    # Only ever applied to names that passed check_identifier (no quotes inside).
    return f'"{identifier}"'


@cache
def _template(name: str) -> str:
    return resources.files(__package__).joinpath("sql", name).read_text(encoding="utf-8")


_PLACEHOLDER = re.compile(r"@([a-z_]+)@")


@dataclass(frozen=True)
class Layout:
    """Where the state lives: a schema, a table in it, and that table's functions.

    Every name derived from ``table`` (its index and its functions ``<table>_fixed_window``,
    ...) lives in ``schema``, so several tables can share one schema.
    """

    schema: str = DEFAULT_SCHEMA
    table: str = DEFAULT_TABLE
    unlogged: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.schema, "schema")
        check_identifier(self.table, "table")
        if not isinstance(self.unlogged, bool):
            raise ConfigurationError(f"unlogged must be a bool, got {self.unlogged!r}")

    @property
    def qualified_table(self) -> str:
        """The quoted ``"schema"."table"``."""
        return f"{_quote(self.schema)}.{_quote(self.table)}"

    def function(self, name: str) -> str:
        """The quoted qualified name of one of the table's functions."""
        return f"{_quote(self.schema)}.{_quote(f'{self.table}_{name}')}"

    def _render(self, text: str) -> str:
        names = {
            "schema": _quote(self.schema),
            "table": self.qualified_table,
            "index": _quote(f"{self.table}_expires_at_idx"),
            "unlogged": "UNLOGGED " if self.unlogged else "",
            **{name: self.function(name) for name in (*_FUNCTIONS, *_REFUNDS)},
        }
        return _PLACEHOLDER.sub(lambda match: names[match.group(1)], text)

    @property
    def fingerprint(self) -> str:
        """Identifies the schema objects' definition; stored as the table's comment so a
        process that finds it in place skips the DDL. ``unlogged`` is left out: it only
        matters when the table is created."""
        body = "".join(_template(name) for name in _DDL_FILES)
        digest = hashlib.sha256(body.encode()).hexdigest()[:16]
        return f"limits-core schema v{_SCHEMA_VERSION} {digest}"

    @property
    def lock_key(self) -> tuple[int, int]:
        """The advisory lock (two int4 halves) serializing schema creation for this table."""
        crc = zlib.crc32(self.qualified_table.encode())
        return _LOCK_CLASS, crc - (1 << 32) if crc >= 1 << 31 else crc

    def ddl(self) -> str:
        """Every statement that creates the schema objects; idempotent."""
        parts = [self._render(_template(name)) for name in _DDL_FILES]
        parts.append(f"COMMENT ON TABLE {self.qualified_table} IS '{self.fingerprint}';\n")
        return "\n".join(parts)

    def ddl_script(self) -> str:
        """:meth:`ddl` as one transaction holding the advisory lock, ready for ``psql``."""
        classid, objid = self.lock_key
        lock = f"SELECT pg_advisory_xact_lock({classid}, {objid});"
        return f"BEGIN;\n{lock}\n\n{self.ddl()}\nCOMMIT;\n"

    def drop_ddl(self) -> str:
        """Statements that remove the table and its functions (the schema itself stays)."""
        lines = [f"DROP TABLE IF EXISTS {self.qualified_table};"]
        lines += [
            f"DROP FUNCTION IF EXISTS {self.function(name)};" for name in (*_FUNCTIONS, *_REFUNDS)
        ]
        return "\n".join(lines) + "\n"

    def statements(self) -> Statements:
        """The runtime statements on this layout."""
        return Statements(self)

    def call(self, kind: str, parameters: int) -> str:
        """The statement deciding one request of algorithm ``kind``: a call of its function
        with ``$1`` key, ``$2`` cost, ``$3`` now (µs, or NULL for the server's clock), ``$4``
        consume, then the algorithm's ``parameters``. Every argument is cast, so the prepared
        statement is the same whatever integer type a driver sends (psycopg sends the smallest
        that fits). A kind with a ``<kind>_statement.sql`` runs that plain statement instead,
        with the same parameters and reply."""
        if kind in _STATEMENTS:
            return self._render(_template(f"{kind}_statement.sql"))
        types = ("text", "bigint", "bigint", "boolean", *("bigint",) * parameters)
        args = ", ".join(f"${i}::{t}" for i, t in enumerate(types, 1))
        return f"SELECT {self.function(kind)}({args})"

    def batch_statement(self, kind: str) -> str | None:
        """The plain statement deciding a batch of hits of algorithm ``kind`` on distinct
        keys at one time (``$1`` keys, ``$2`` costs, ``$3`` now, then the parameters), if the
        kind has one; it replies as the batch function does."""
        if kind in _BATCH_STATEMENTS:
            return self._render(_template(f"{kind}_batch_statement.sql"))
        return None

    def refund_call(self, kind: str, parameters: int) -> str:
        """The statement giving cost back for algorithm ``kind``: ``$1`` key, ``$2`` amount,
        ``$3`` now (or NULL), then the algorithm's ``parameters``; it returns what a peek of
        cost 1 returns right after, as :meth:`call` does."""
        types = ("text", "bigint", "bigint", *("bigint",) * parameters)
        args = ", ".join(f"${i}::{t}" for i, t in enumerate(types, 1))
        return f"SELECT {self.function(kind + '_refund')}({args})"

    @property
    def policy_call(self) -> str:
        """The statement deciding one request of a policy: ``$1`` the components' keys,
        ``$2`` cost, ``$3`` now, ``$4`` consume, ``$5`` their kinds, ``$6`` their parameters
        (:data:`POLICY_PARAMETERS` each)."""
        return (
            f"SELECT {self.function('policy')}($1::text[], $2::bigint, $3::bigint, "
            "$4::boolean, $5::text[], $6::bigint[])"
        )

    @property
    def policy_refund_call(self) -> str:
        """The statement giving cost back to every limit of a policy: :attr:`policy_call`'s
        arguments with ``$2`` the amount, and no consume."""
        return (
            f"SELECT {self.function('policy_refund')}($1::text[], $2::bigint, $3::bigint, "
            "$4::text[], $5::bigint[])"
        )


class Statements:
    """The runtime SQL of one layout. Every statement uses PostgreSQL's own ``$n``
    placeholders: asyncpg takes them as they are, psycopg through its ``RawCursor``."""

    __slots__ = ("check", "layout", "lock", "policy_reset", "purge", "reset")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        #: Returns the table's comment: the schema fingerprint when it is in place.
        self.check = "SELECT obj_description(to_regclass($1), 'pg_class')"
        self.lock = "SELECT pg_advisory_xact_lock($1, $2)"
        self.reset = f"DELETE FROM {layout.qualified_table} WHERE key = $1"
        self.policy_reset = f"SELECT {layout.function('policy_reset')}($1::text[])"
        self.purge = f"SELECT {layout.function('purge_expired')}($1, $2)"


@dataclass(frozen=True, slots=True)
class Call:
    """One algorithm's call on one backend, computed once and reused for every decision.

    A decision sends ``sql`` with ``(key_prefix + key, cost, now_us, consume, *args)`` and gets
    back one value, the array ``[allowed (1 or 0), remaining, reset_after_us, retry_after_us]``,
    which :func:`decode` turns into a Decision. A refund sends ``refund_sql`` with
    :meth:`refund_args` and gets back the same. ``reset`` deletes
    the key's state, given :meth:`argument`.
    """

    sql: str
    refund_sql: str
    key_prefix: str
    args: tuple[int, ...]
    limit: int
    max_cost: int
    reset: str

    def argument(self, key: str) -> str:
        """The statement's first argument for the user key ``key``: the stored key."""
        return self.key_prefix + key

    def refund_args(self, key: str, amount: int, now_us: int | None) -> tuple[Any, ...]:
        return (self.key_prefix + key, amount, now_us, *self.args)

    def decode(self, reply: list[int]) -> Decision:
        return decode(reply, self.limit)


@dataclass(frozen=True, slots=True)
class PolicyCall:
    """A :class:`~limits_core.Policy`'s call, with the interface of :class:`Call`: one key per
    component as the first argument, one quadruple per component in the reply, combined by
    :func:`limits_core.policy.combine` as on every backend."""

    sql: str
    refund_sql: str
    key_prefixes: tuple[str, ...]
    args: tuple[list[str], list[int]]
    limits: tuple[int, ...]
    max_cost: int
    reset: str

    def argument(self, key: str) -> list[str]:
        return [prefix + key for prefix in self.key_prefixes]

    def refund_args(self, key: str, amount: int, now_us: int | None) -> tuple[Any, ...]:
        return (self.argument(key), amount, now_us, *self.args)

    def decode(self, reply: list[int]) -> Decision:
        return combine(
            [decode(reply[4 * i : 4 * i + 4], limit) for i, limit in enumerate(self.limits)]
        )


def _fixed_window(algorithm: Any) -> tuple[int, ...]:
    return (algorithm.limit, algorithm.rate.period_us)


def _sliding_log(algorithm: Any) -> tuple[int, ...]:
    return (algorithm.limit, algorithm.rate.period_us)


def _token_bucket(algorithm: Any) -> tuple[int, ...]:
    unit = algorithm.unit
    return (
        algorithm.burst,
        unit,
        algorithm.refill_per_us,
        algorithm.burst * unit,
        algorithm.max_state_ttl_us,
    )


def _sliding_window_counter(algorithm: Any) -> tuple[int, ...]:
    return (algorithm.limit, algorithm.rate.period_us)


def _gcra(algorithm: Any) -> tuple[int, ...]:
    interval = algorithm.emission_interval
    return (algorithm.burst, algorithm.scale, interval, algorithm.burst * interval)


def _leaky_bucket(algorithm: Any) -> tuple[int, ...]:
    unit = algorithm.unit
    return (
        algorithm.capacity,
        unit,
        algorithm.drain_per_us,
        algorithm.capacity * unit,
        algorithm.max_state_ttl_us,
    )


#: How each supported algorithm's parameters become its function's trailing arguments.
_ENCODERS: dict[type[Any], Callable[[Any], tuple[int, ...]]] = {
    FixedWindow: _fixed_window,
    SlidingLog: _sliding_log,
    TokenBucket: _token_bucket,
    SlidingWindowCounter: _sliding_window_counter,
    GCRA: _gcra,
    LeakyBucket: _leaky_bucket,
    Concurrency: lambda algorithm: (algorithm.limit, algorithm.lease_ttl_us),
}


#: Parameters per component in a policy call's array: the most any algorithm takes.
POLICY_PARAMETERS = 5


def _encoder(algorithm: Algorithm) -> Callable[[Any], tuple[int, ...]]:
    encode = _ENCODERS.get(type(algorithm))
    if encode is None:
        supported = ", ".join(sorted(cls.__name__ for cls in _ENCODERS))
        raise ConfigurationError(
            f"the PostgreSQL backends support {supported} and policies of them; "
            f"got {type(algorithm).__name__}"
        )
    return encode


def plan(algorithm: Algorithm, statements: Statements, prefix: str) -> Call | PolicyCall:
    """The call deciding ``algorithm`` (or policy) on these statements' table, for keys under
    ``prefix``.

    The stored key is ``prefix + algorithm.namespace + ":" + key``: the namespace holds the
    algorithm's parameters, so two limits on one key never share state. A policy stores one
    row per component, ``prefix + policy.namespace + ":" + component.namespace + ":" + key``,
    apart from the same algorithm used alone (as on Redis and in memory).
    """
    if isinstance(algorithm, Policy):
        return _plan_policy(algorithm, statements, prefix)
    args = _encoder(algorithm)(algorithm)
    return Call(
        sql=statements.layout.call(algorithm.kind, len(args)),
        refund_sql=statements.layout.refund_call(algorithm.kind, len(args)),
        key_prefix=f"{prefix}{algorithm.namespace}:",
        args=args,
        limit=algorithm.limit,
        max_cost=algorithm.limit + 1,
        reset=statements.reset,
    )


def _plan_policy(policy: Policy, statements: Statements, prefix: str) -> PolicyCall:
    params: list[int] = []
    for component in policy.algorithms:
        values = _encoder(component)(component)
        params += (*values, *(0,) * (POLICY_PARAMETERS - len(values)))
    return PolicyCall(
        sql=statements.layout.policy_call,
        refund_sql=statements.layout.policy_refund_call,
        key_prefixes=tuple(
            f"{prefix}{policy.namespace}:{component.namespace}:" for component in policy.algorithms
        ),
        args=([component.kind for component in policy.algorithms], params),
        limits=tuple(component.limit for component in policy.algorithms),
        max_cost=policy.limit + 1,
        reset=statements.policy_reset,
    )


@dataclass(frozen=True, slots=True)
class LeaseCall:
    """A concurrency limit's acquire and release on one backend.

    An acquire sends ``acquire_sql`` with :meth:`acquire_args` and gets back what a decision
    does (see :class:`Call`); a release sends ``release_sql`` with :meth:`release_args` and
    gets back whether the lease was live.
    """

    acquire_sql: str
    release_sql: str
    key_prefix: str
    args: tuple[int, ...]
    limit: int

    def acquire_args(
        self, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> tuple[Any, ...]:
        return (
            self.key_prefix + key,
            min(cost, self.limit + 1),
            now_us,
            True,
            *self.args,
            lease_id,
        )

    def release_args(self, key: str, lease_id: int, now_us: int | None) -> tuple[Any, ...]:
        return (self.key_prefix + key, lease_id, now_us)


def lease_plan(algorithm: Algorithm, statements: Statements, prefix: str) -> LeaseCall:
    """The acquire and release of the concurrency limit ``algorithm`` (see :func:`plan`)."""
    if not isinstance(algorithm, Concurrency):
        raise ConfigurationError(f"{algorithm!r} holds no leases")
    args = _encoder(algorithm)(algorithm)
    layout = statements.layout
    return LeaseCall(
        acquire_sql=layout.call(algorithm.kind, len(args) + 1),
        release_sql=(
            f"SELECT {layout.function('concurrency_release')}($1::text, $2::bigint, $3::bigint)"
        ),
        key_prefix=f"{prefix}{algorithm.namespace}:",
        args=args,
        limit=algorithm.limit,
    )


def decode(reply: list[int], limit: int) -> Decision:
    """The Decision for a function's reply (see :class:`Call`)."""
    return decision_from_us(reply[0] == 1, limit, reply[1], reply[2], reply[3])


def check_options(*, prefix: object, pool_size: object, pool_timeout: object) -> None:
    """Validate the options both backends share."""
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a str, got {prefix!r}")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigurationError(f"pool_size must be a positive int, got {pool_size!r}")
    check_seconds(pool_timeout, "pool_timeout")


def check_seconds(value: object, what: str, *, optional: bool = False) -> float | None:
    """Return ``value`` as a positive number of seconds (or None when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ConfigurationError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_batch_size(batch_size: object) -> int:
    """Validate ``purge_expired``'s batch size."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
    return min(batch_size, 2**31 - 1)


def check_max_batch(value: object) -> int:
    """Validate the most decisions one batch statement may hold."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ConfigurationError(f"max_batch must be an int from 1 to 10000, got {value!r}")
    return value
