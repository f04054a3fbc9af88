"""Each algorithm's statements on one PostgreSQL backend, computed on first use.

Both backends hold one :class:`Plans`; their hot path reads :attr:`Plans.calls` directly and
calls :meth:`Plans.call` only on a miss.
"""

from __future__ import annotations

from backends.postgres.batch import BatchCall, plan_batch
from backends.postgres.common import Call, LeaseCall, PolicyCall, Statements, lease_plan, plan
from limits_core.algorithm import Algorithm

__all__ = ["Plans"]


class Plans:
    """The calls of every algorithm used on one backend, by ``algorithm.namespace``."""

    __slots__ = ("_batches", "_leases", "_prefix", "_statements", "calls")

    def __init__(self, statements: Statements, prefix: str) -> None:
        self._statements = statements
        self._prefix = prefix
        #: Decisions, refunds and resets (see :func:`~backends.postgres.common.plan`).
        self.calls: dict[str, Call | PolicyCall] = {}
        self._leases: dict[str, LeaseCall] = {}
        self._batches: dict[str, BatchCall] = {}

    def call(self, algorithm: Algorithm) -> Call | PolicyCall:
        call = self.calls.get(algorithm.namespace)
        if call is None:
            call = self.calls[algorithm.namespace] = plan(algorithm, self._statements, self._prefix)
        return call

    def lease(self, algorithm: Algorithm) -> LeaseCall:
        """The acquire and release of a concurrency limit."""
        call = self._leases.get(algorithm.namespace)
        if call is None:
            call = self._leases[algorithm.namespace] = lease_plan(
                algorithm, self._statements, self._prefix
            )
        return call

    def batch(self, algorithm: Algorithm) -> BatchCall:
        """The statement deciding many requests of ``algorithm`` at once."""
        call = self._batches.get(algorithm.namespace)
        if call is None:
            call = self._batches[algorithm.namespace] = plan_batch(
                algorithm, self._statements, self._prefix
            )
        return call
