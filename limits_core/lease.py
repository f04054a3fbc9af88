"""Leases: what a concurrency limit hands out instead of consuming cost.

A rate limit forgets a request once it is counted; a concurrency limit must know when the
request ends. :meth:`Limiter.acquire <limits_core.Limiter.acquire>` returns a :class:`Lease`
that holds its cost until :meth:`Limiter.release <limits_core.Limiter.release>` gives it back,
or until the algorithm's lease time-to-live runs out (so a holder that crashed cannot keep
capacity forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from limits_core.algorithm import Algorithm
from limits_core.decision import Decision

__all__ = ["Lease", "LeaseAlgorithm"]


@dataclass(frozen=True, slots=True)
class Lease:
    """One acquired (or refused) share of a concurrency limit.

    Attributes:
        key: the limited key.
        id: the lease's identity on the store, random and 63 bits long.
        cost: the share of the limit it holds while allowed.
        decision: the decision of the acquire; a denied lease holds nothing, and releasing
            it is a no-op.
    """

    key: str
    id: int
    cost: int
    decision: Decision

    @property
    def allowed(self) -> bool:
        """Whether the lease was granted (and holds ``cost`` until released or expired)."""
        return self.decision.allowed


@runtime_checkable
class LeaseAlgorithm(Algorithm, Protocol):
    """An algorithm whose capacity is held by leases and given back by releasing them.

    Its ``step`` only peeks (would an acquire of ``cost`` succeed now?); ``acquire`` and
    ``release`` are the operations that change state. Both are pure, over integer
    microseconds, like ``step``.
    """

    @property
    def lease_ttl_us(self) -> int:
        """How long a lease lives when nobody releases it."""
        ...

    def acquire(
        self, state: Any, now_us: int, lease_id: int, cost: int
    ) -> tuple[Decision, Any, int]:
        """``(decision, new_state, expires_at_us)``; the state changes only when allowed."""
        ...

    def release(self, state: Any, now_us: int, lease_id: int) -> tuple[bool, Any, int]:
        """``(released, new_state, expires_at_us)``: ``released`` is False, and the state
        unchanged, when ``lease_id`` holds nothing (unknown, released or expired)."""
        ...
