"""The protocols a store implements to serve :class:`~limits_core.Limiter` and
:class:`~limits_core.AsyncLimiter`.

A backend makes an algorithm's pure ``step`` atomic on its store, in one round trip per
decision. The limiter validates keys and costs before calling it, and passes ``now_us=None``
when the store should use its own clock (Redis ``TIME``, PostgreSQL ``clock_timestamp()``).

Giving cost back (:meth:`Limiter.refund <limits_core.Limiter.refund>`) is optional: a backend
that supports it also implements :class:`RefundingBackend` (``refund``) or
:class:`AsyncRefundingBackend` (``arefund``).

A backend may also hand out ``decide`` already bound to one algorithm (:class:`BindingBackend`,
:class:`AsyncBindingBackend`), which the limiter then calls instead: the in-memory backend does,
to look its table up once rather than on every decision.

Deciding many requests at once is optional: a backend that also implements
:class:`BatchBackend` (:class:`AsyncBatchBackend`) serves ``hit_many`` in one round trip;
for any other, the limiter decides the requests one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from limits_core.algorithm import Algorithm
from limits_core.decision import Decision

__all__ = [
    "AsyncBackend",
    "AsyncBatchBackend",
    "AsyncBindingBackend",
    "AsyncLeaseBackend",
    "AsyncRefundingBackend",
    "Backend",
    "BatchBackend",
    "BindingBackend",
    "LeaseBackend",
    "RefundingBackend",
]


@runtime_checkable
class Backend(Protocol):
    """A store used from synchronous code."""

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        """Atomically apply ``algorithm.step`` to ``key``'s state; store it only if
        ``consume`` and the request is allowed."""
        ...

    def reset(self, algorithm: Algorithm, key: str) -> None:
        """Forget ``key``'s state for ``algorithm``."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class AsyncBackend(Protocol):
    """A store used from asyncio code; the same operations as :class:`Backend`."""

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        """Atomically apply ``algorithm.step`` to ``key``'s state; store it only if
        ``consume`` and the request is allowed."""
        ...

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        """Forget ``key``'s state for ``algorithm``."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class BindingBackend(Protocol):
    """What a synchronous backend adds, optionally, to decide faster for one algorithm."""

    def bind(self, algorithm: Algorithm) -> Callable[[str, int, int | None, bool], Decision]:
        """``decide`` with ``algorithm`` fixed: ``bound(key, cost, now_us, consume)`` must
        return what ``decide(algorithm, key, cost, now_us, consume)`` would."""
        ...


@runtime_checkable
class AsyncBindingBackend(Protocol):
    """The asyncio twin of :class:`BindingBackend`."""

    def abind(
        self, algorithm: Algorithm
    ) -> Callable[[str, int, int | None, bool], Awaitable[Decision]]:
        """``adecide`` with ``algorithm`` fixed, as :meth:`BindingBackend.bind`."""
        ...


@runtime_checkable
class BatchBackend(Protocol):
    """What a synchronous backend adds, optionally, to decide many requests at once."""

    def decide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order, each as :meth:`Backend.decide` would at
        ``now_us``, seeing the effect of those before it; one decision per request."""
        ...


@runtime_checkable
class RefundingBackend(Protocol):
    """A synchronous store that can give cost back."""

    def refund(self, algorithm: Algorithm, key: str, amount: int, now_us: int | None) -> Decision:
        """Atomically apply ``algorithm.refund`` to ``key``'s state (never creating one), and
        return the decision a peek of cost 1 gives right after, in the same step."""
        ...


@runtime_checkable
class AsyncBatchBackend(Protocol):
    """What an asyncio backend adds, optionally, to decide many requests at once."""

    async def adecide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order, as :meth:`BatchBackend.decide_many`."""
        ...


@runtime_checkable
class AsyncRefundingBackend(Protocol):
    """An asyncio store that can give cost back; the twin of :class:`RefundingBackend`."""

    async def arefund(
        self, algorithm: Algorithm, key: str, amount: int, now_us: int | None
    ) -> Decision:
        """Atomically apply ``algorithm.refund`` to ``key``'s state (never creating one), and
        return the decision a peek of cost 1 gives right after, in the same step."""
        ...


@runtime_checkable
class LeaseBackend(Protocol):
    """A synchronous store that can also hold the leases of a
    :class:`~limits_core.lease.LeaseAlgorithm` (``algorithms.Concurrency``): each operation
    is ``algorithm.acquire`` / ``algorithm.release`` made atomic, in one round trip."""

    def acquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        """Take the lease ``lease_id`` of ``cost`` on ``key`` if it fits."""
        ...

    def release(self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None) -> bool:
        """Give the lease back; False when it held nothing (unknown, released or expired)."""
        ...


@runtime_checkable
class AsyncLeaseBackend(Protocol):
    """The asyncio twin of :class:`LeaseBackend`."""

    async def aacquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        """Take the lease ``lease_id`` of ``cost`` on ``key`` if it fits."""
        ...

    async def arelease(
        self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None
    ) -> bool:
        """Give the lease back; False when it held nothing (unknown, released or expired)."""
        ...
