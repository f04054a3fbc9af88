"""The protocols a store implements to serve :class:`~limits_core.Limiter` and
:class:`~limits_core.AsyncLimiter`.

A backend makes an algorithm's pure ``step`` atomic on its store, in one round trip per
decision. The limiter validates keys and costs before calling it, and passes ``now_us=None``
when the store should use its own clock (Redis ``TIME``, PostgreSQL ``clock_timestamp()``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from limits_core.algorithm import Algorithm
from limits_core.decision import Decision

__all__ = ["AsyncBackend", "AsyncLeaseBackend", "Backend", "LeaseBackend"]


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
