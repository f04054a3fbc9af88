"""Many decisions in one statement: what both PostgreSQL backends share to batch them.

The table's batch function (``sql/batch.sql``) takes one algorithm's requests as arrays and
decides them with that algorithm's own function, in one transaction; this module builds its
arguments and decodes its reply, for :meth:`PostgresBackend.decide_many`,
:meth:`AsyncPostgresBackend.adecide_many` and the async backend's coalescing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.postgres.common import BATCH_KINDS, Call, Statements, plan
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError

__all__ = ["BatchCall", "decode_many", "plan_batch"]


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One algorithm's batch call on one backend, computed once per algorithm.

    ``sql`` takes ``(kind, keys, costs, nows, consumes, params)``: the keys already prefixed,
    the costs already capped at ``max_cost``, and ``params`` the algorithm's arguments.
    ``plain``, for the kinds that have one, decides a batch of hits on distinct keys at one
    time as a plain statement, cheaper for the server, with the same reply; :meth:`statement`
    picks it when it applies. ``single`` is the algorithm's one-decision call (see
    :class:`~backends.postgres.common.Call`), cheaper for a batch of one; its reply has the
    batch's shape.
    """

    sql: str
    plain: str | None
    single: Call
    kind: str
    key_prefix: str
    params: list[int]  # a list: psycopg sends a tuple as a record, not an array
    limit: int
    max_cost: int

    def statement(
        self,
        keys: list[str],
        costs: list[int],
        nows: list[int | None],
        consumes: list[bool],
    ) -> tuple[str, tuple[Any, ...]]:
        """The SQL and arguments deciding these requests (keys prefixed, costs capped)."""
        if (
            self.plain is not None
            and all(consumes)
            and nows.count(nows[0]) == len(nows)
            and len(set(keys)) == len(keys)
        ):
            return self.plain, (keys, costs, nows[0], *self.params)
        return self.sql, (self.kind, keys, costs, nows, consumes, self.params)

    def for_requests(
        self, requests: Sequence[tuple[str, int]], now_us: int | None, consume: bool
    ) -> tuple[str, tuple[Any, ...]]:
        """:meth:`statement` for ``requests`` (``(key, cost)`` pairs) all made at ``now_us``
        (None: the server's clock) as hits (``consume``) or peeks."""
        prefix, max_cost = self.key_prefix, self.max_cost
        keys = [prefix + key for key, _ in requests]
        costs = [cost if cost <= max_cost else max_cost for _, cost in requests]
        count = len(keys)
        return self.statement(keys, costs, [now_us] * count, [consume] * count)


def plan_batch(algorithm: Algorithm, statements: Statements, prefix: str) -> BatchCall:
    """The batch call for ``algorithm``; raises ConfigurationError as :func:`plan` does."""
    call = plan(algorithm, statements, prefix)
    if algorithm.kind not in BATCH_KINDS or not isinstance(call, Call):
        raise ConfigurationError(f"{algorithm!r} is decided one request at a time")
    layout = statements.layout
    function = layout.function("batch")
    return BatchCall(
        sql=(
            f"SELECT {function}($1::text, $2::text[], $3::bigint[], $4::bigint[], "
            "$5::boolean[], $6::bigint[])"
        ),
        plain=layout.batch_statement(algorithm.kind),
        single=call,
        kind=algorithm.kind,
        key_prefix=call.key_prefix,
        params=list(call.args),
        limit=call.limit,
        max_cost=call.max_cost,
    )


def decode_many(reply: Sequence[int], limit: int) -> list[Decision]:
    """The Decisions of a batch function's flattened reply, in request order."""
    return [
        decision_from_us(reply[i] == 1, limit, reply[i + 1], reply[i + 2], reply[i + 3])
        for i in range(0, len(reply), 4)
    ]
