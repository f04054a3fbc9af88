"""The facades users hold: :class:`Limiter` (sync) and :class:`AsyncLimiter` (asyncio).

Both share one base that validates keys and costs and reads the clock, so the twins differ
only in the one call they make to their backend.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from limits_core.algorithm import Algorithm, Refundable
from limits_core.backend import (
    AsyncBackend,
    AsyncBindingBackend,
    AsyncLeaseBackend,
    AsyncRefundingBackend,
    Backend,
    BindingBackend,
    LeaseBackend,
    RefundingBackend,
)
from limits_core.clock import Clock
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError, RateLimitExceeded
from limits_core.lease import Lease, LeaseAlgorithm
from limits_core.policy import Policy
from limits_core.validation import MAX_KEY_BYTES, check_cost, check_key

__all__ = ["AsyncLimiter", "Limiter"]


# hit() and peek() are the hot path: each accepts the common case (a printable key of at most
# 128 characters, which cannot exceed 512 UTF-8 bytes nor hold a control character or a lone
# surrogate; a cost of 1, or an int up to limit + 1) inline, and calls _checked() for the rest.
# The four copies are kept identical by tests/test_limiter_twins.py.
_SHORT = MAX_KEY_BYTES // 4
# The default cost, tested by identity first: CPython shares one object for each small int,
# and anything else (True, 1.0, a larger 1) falls through to the full checks.
_ONE = 1


_Decide = TypeVar("_Decide", bound=Callable[..., Any])


def _peek_only(algorithm: Algorithm, decide: _Decide) -> _Decide:
    """``decide`` for a lease algorithm: peeks pass, hits are refused before any I/O."""

    def peek(key: str, cost: int, now_us: int | None, consume: bool) -> Any:
        if consume:
            raise ConfigurationError(
                f"{algorithm!r} is a concurrency limit: a hit would hold an anonymous slot "
                "until its lease_ttl; use acquire() and release(), or `with limiter.lease(key):`"
            )
        return decide(key, cost, now_us, consume)

    return cast(_Decide, peek)


class _LimiterBase:
    # _leases: whether acquire / release / lease apply (a LeaseAlgorithm).
    __slots__ = ("_algorithm", "_clock", "_leases", "_max_cost", "_max_refund")

    def __init__(self, algorithm: Algorithm | Sequence[Algorithm], clock: Clock | None) -> None:
        if isinstance(algorithm, list | tuple):
            algorithm = Policy(*algorithm)
        if not isinstance(algorithm, Algorithm):
            raise ConfigurationError(f"not an algorithm: {algorithm!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"clock must provide now_us(), got {clock!r}")
        self._algorithm = algorithm
        self._clock = clock
        # A cost above the limit is denied whatever the state; sending limit + 1 instead keeps
        # huge integers away from drivers and stores (Lua doubles, bigint columns).
        self._max_cost = algorithm.limit + 1
        self._max_refund = 0  # found on the first refund: 0 until then
        self._leases = isinstance(algorithm, LeaseAlgorithm)

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm this limiter applies."""
        return self._algorithm

    @property
    def clock(self) -> Clock | None:
        """The injected clock, or ``None`` when the store's own clock decides."""
        return self._clock

    def _checked(self, key: str, cost: int) -> tuple[str, int]:
        """The full checks, for whatever the fast path of hit/peek did not accept."""
        check_key(key)
        return key, min(check_cost(cost), self._max_cost)

    def _many(
        self, requests: Iterable[tuple[str, int]]
    ) -> tuple[list[tuple[str, int]], int | None]:
        """``hit_many``'s requests, all checked before any is sent, and the batch's one time."""
        if isinstance(requests, str | bytes) or not isinstance(requests, Iterable):
            raise ConfigurationError(f"requests must be (key, cost) pairs, got {requests!r}")
        if self._leases:
            raise ConfigurationError(
                f"{self._algorithm!r} is a concurrency limit: use acquire() and release()"
            )
        checked = []
        for request in requests:
            if not isinstance(request, tuple) or len(request) != 2:
                raise ConfigurationError(f"a request must be a (key, cost) pair, got {request!r}")
            checked.append(self._checked(*request))
        return checked, self._now_us()

    def _refund_checked(self, key: str, amount: int) -> tuple[str, int]:
        """The checks of refund(), all made before any state is touched."""
        check_key(key)
        amount = check_cost(amount, "amount")
        if not self._max_refund:
            algorithm = self._algorithm
            parts = algorithm.algorithms if isinstance(algorithm, Policy) else (algorithm,)
            for part in parts:
                if not isinstance(part, Refundable):
                    raise ConfigurationError(f"{part!r} cannot give back cost: it has no refund()")
            # No limit holds more than its own capacity: a larger amount gives back the same,
            # and capping it keeps huge integers away from drivers and stores.
            self._max_refund = max(part.limit for part in parts)
        return key, min(amount, self._max_refund)

    def _check_lease_backend(self, backend: object, protocol: type) -> None:
        if self._leases and not isinstance(backend, protocol):
            raise ConfigurationError(f"{backend!r} cannot hold the leases of {self._algorithm!r}")

    def _new_lease(self, key: str, cost: int) -> tuple[str, int, int, int | None]:
        """``(key, cost, lease id, now_us)`` for an acquire, after the checks."""
        if not self._leases:
            raise ConfigurationError(
                f"{self._algorithm!r} is consumed by hits; acquire and release are for "
                "algorithms.Concurrency"
            )
        key, cost = self._checked(key, cost)
        # 63 bits: an id fits a signed 64-bit integer (PostgreSQL's bigint).
        return key, cost, secrets.randbits(63), self._now_us()

    def _held(self, lease: Lease) -> bool:
        """Whether releasing ``lease`` needs a round trip (a denied lease holds nothing)."""
        if not isinstance(lease, Lease):
            raise ConfigurationError(f"not a Lease: {lease!r}")
        if not self._leases:
            raise ConfigurationError(f"{self._algorithm!r} holds no leases")
        return lease.decision.allowed

    def _now_us(self) -> int | None:
        clock = self._clock
        return None if clock is None else clock.now_us()


def _cannot_refund(backend: object) -> Callable[..., Any]:
    def refuse(*args: object) -> Any:
        raise ConfigurationError(f"{type(backend).__name__} cannot give back cost (no refund)")

    return refuse


class Limiter(_LimiterBase):
    """Applies one algorithm, or a policy of several, to keys on a synchronous backend.

    A list of algorithms is a :class:`~limits_core.Policy`: all of them are checked at once,
    all or nothing.

    >>> from algorithms import FixedWindow
    >>> from backends.memory import MemoryBackend
    >>> limiter = Limiter(FixedWindow("2/second"), MemoryBackend())
    >>> [limiter.hit("user:42").allowed for _ in range(3)]
    [True, True, False]
    """

    __slots__ = ("_backend", "_decide", "_refund")

    def __init__(
        self,
        algorithm: Algorithm | Sequence[Algorithm],
        backend: Backend,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(algorithm, clock)
        if not isinstance(backend, Backend):
            raise ConfigurationError(f"not a synchronous backend: {backend!r}")
        self._backend = backend
        # Bound to the algorithm once, here: (key, cost, now_us, consume) -> Decision.
        self._decide: Callable[[str, int, int | None, bool], Decision] = (
            backend.bind(self._algorithm)
            if isinstance(backend, BindingBackend)
            else partial(backend.decide, self._algorithm)
        )
        self._refund: Callable[[Algorithm, str, int, int | None], Decision] = (
            backend.refund if isinstance(backend, RefundingBackend) else _cannot_refund(backend)
        )
        if self._leases:
            self._check_lease_backend(backend, LeaseBackend)
            self._decide = _peek_only(self._algorithm, self._decide)

    @property
    def backend(self) -> Backend:
        return self._backend

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` on ``key``; consume the cost only if allowed."""
        if not (type(key) is str and key and len(key) <= _SHORT and key.isprintable()) or (
            cost is not _ONE and (type(cost) is not int or not 0 < cost <= self._max_cost)
        ):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return self._decide(key, cost, None if clock is None else clock.now_us(), True)

    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision :meth:`hit` would give now, consuming nothing."""
        if not (type(key) is str and key and len(key) <= _SHORT and key.isprintable()) or (
            cost is not _ONE and (type(cost) is not int or not 0 < cost <= self._max_cost)
        ):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return self._decide(key, cost, None if clock is None else clock.now_us(), False)

    def hit_many(self, requests: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide ``(key, cost)`` requests at one time, in order (each sees the effect of those
        before it), in one round trip when the backend can (``decide_many``); a decision per
        request. Every request is checked first: bad input touches nothing."""
        checked, now_us = self._many(requests)
        many = getattr(self._backend, "decide_many", None)
        if many is None:
            return [self._decide(k, c, now_us, True) for k, c in checked]
        return many(self._algorithm, checked, now_us, True)  # type: ignore[no-any-return]

    def refund(self, key: str, amount: int) -> Decision:
        """Give back ``amount`` of cost that ``key`` was admitted but did not use.

        A token budget: reserve the most a request may cost with ``hit(key, cost=...)``, then
        refund what it did not use. A refund never raises the capacity above the limit (an
        ``amount`` above it gives back as much as the limit itself), and a key with no state
        has nothing to give back (nothing is stored). ``amount`` must be an int >= 1.

        Returns the decision :meth:`peek` would give right after, from the same atomic step.
        """
        key, amount = self._refund_checked(key, amount)
        return self._refund(self._algorithm, key, amount, self._now_us())

    def reset(self, key: str) -> None:
        """Forget everything stored for ``key``: its full limit is available again."""
        self._backend.reset(self._algorithm, check_key(key))

    def acquire(self, key: str, cost: int = 1) -> Lease:
        """Take a lease of ``cost`` on ``key`` from a concurrency limit if it fits now.

        The returned :class:`~limits_core.Lease` holds ``cost`` until :meth:`release` or its
        ``lease_ttl`` runs out; when ``lease.allowed`` is False it holds nothing.
        """
        key, cost, lease_id, now_us = self._new_lease(key, cost)
        backend = cast(LeaseBackend, self._backend)
        decision = backend.acquire(self._algorithm, key, lease_id, cost, now_us)
        return Lease(key, lease_id, cost, decision)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` back; idempotent. False when it held nothing any more (denied,
        already released, or expired)."""
        if not self._held(lease):
            return False
        backend = cast(LeaseBackend, self._backend)
        return backend.release(self._algorithm, lease.key, lease.id, self._now_us())

    @contextmanager
    def lease(self, key: str, cost: int = 1) -> Iterator[Lease]:
        """``with limiter.lease(key):`` holds a lease for the block and releases it on exit,
        exceptions included; raises :class:`~limits_core.RateLimitExceeded` when denied.

        When the block raises, a store error while releasing is not raised over it (the lease
        then expires after ``lease_ttl``)."""
        lease = self.acquire(key, cost)
        if not lease.allowed:
            raise RateLimitExceeded(lease.decision)
        try:
            yield lease
        except BaseException:
            # The block's own error matters more than a store failing to take the lease
            # back, which then expires by itself after lease_ttl.
            with suppress(BackendError):
                self.release(lease)
            raise
        self.release(lease)

    def close(self) -> None:
        """Close the backend."""
        self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncLimiter(_LimiterBase):
    """Applies one algorithm, or a policy, to keys on an asyncio backend; the twin of
    :class:`Limiter`."""

    __slots__ = ("_backend", "_decide", "_refund")

    def __init__(
        self,
        algorithm: Algorithm | Sequence[Algorithm],
        backend: AsyncBackend,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(algorithm, clock)
        if not isinstance(backend, AsyncBackend):
            raise ConfigurationError(f"not an asyncio backend: {backend!r}")
        self._backend = backend
        # Bound to the algorithm once, here: (key, cost, now_us, consume) -> Decision.
        self._decide: Callable[[str, int, int | None, bool], Awaitable[Decision]] = (
            backend.abind(self._algorithm)
            if isinstance(backend, AsyncBindingBackend)
            else partial(backend.adecide, self._algorithm)
        )
        self._refund: Callable[[Algorithm, str, int, int | None], Awaitable[Decision]] = (
            backend.arefund
            if isinstance(backend, AsyncRefundingBackend)
            else _cannot_refund(backend)
        )
        if self._leases:
            self._check_lease_backend(backend, AsyncLeaseBackend)
            self._decide = _peek_only(self._algorithm, self._decide)

    @property
    def backend(self) -> AsyncBackend:
        return self._backend

    async def hit(self, key: str, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` on ``key``; consume the cost only if allowed."""
        if not (type(key) is str and key and len(key) <= _SHORT and key.isprintable()) or (
            cost is not _ONE and (type(cost) is not int or not 0 < cost <= self._max_cost)
        ):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return await self._decide(key, cost, None if clock is None else clock.now_us(), True)

    async def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision :meth:`hit` would give now, consuming nothing."""
        if not (type(key) is str and key and len(key) <= _SHORT and key.isprintable()) or (
            cost is not _ONE and (type(cost) is not int or not 0 < cost <= self._max_cost)
        ):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return await self._decide(key, cost, None if clock is None else clock.now_us(), False)

    async def hit_many(self, requests: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide ``(key, cost)`` requests at one time, in order (each sees the effect of those
        before it), in one round trip when the backend can (``decide_many``); a decision per
        request. Every request is checked first: bad input touches nothing."""
        checked, now_us = self._many(requests)
        many = getattr(self._backend, "adecide_many", None)
        if many is None:
            return [await self._decide(k, c, now_us, True) for k, c in checked]
        return await many(self._algorithm, checked, now_us, True)  # type: ignore[no-any-return]

    async def refund(self, key: str, amount: int) -> Decision:
        """Give back ``amount`` of cost that ``key`` was admitted but did not use.

        A token budget: reserve the most a request may cost with ``hit(key, cost=...)``, then
        refund what it did not use. A refund never raises the capacity above the limit (an
        ``amount`` above it gives back as much as the limit itself), and a key with no state
        has nothing to give back (nothing is stored). ``amount`` must be an int >= 1.

        Returns the decision :meth:`peek` would give right after, from the same atomic step.
        """
        key, amount = self._refund_checked(key, amount)
        return await self._refund(self._algorithm, key, amount, self._now_us())

    async def reset(self, key: str) -> None:
        """Forget everything stored for ``key``: its full limit is available again."""
        await self._backend.areset(self._algorithm, check_key(key))

    async def acquire(self, key: str, cost: int = 1) -> Lease:
        """Take a lease of ``cost`` on ``key`` from a concurrency limit if it fits now.

        The returned :class:`~limits_core.Lease` holds ``cost`` until :meth:`release` or its
        ``lease_ttl`` runs out; when ``lease.allowed`` is False it holds nothing.
        """
        key, cost, lease_id, now_us = self._new_lease(key, cost)
        backend = cast(AsyncLeaseBackend, self._backend)
        decision = await backend.aacquire(self._algorithm, key, lease_id, cost, now_us)
        return Lease(key, lease_id, cost, decision)

    async def release(self, lease: Lease) -> bool:
        """Give ``lease`` back; idempotent. False when it held nothing any more (denied,
        already released, or expired)."""
        if not self._held(lease):
            return False
        backend = cast(AsyncLeaseBackend, self._backend)
        return await backend.arelease(self._algorithm, lease.key, lease.id, self._now_us())

    @asynccontextmanager
    async def lease(self, key: str, cost: int = 1) -> AsyncIterator[Lease]:
        """``async with limiter.lease(key):`` holds a lease for the block and releases it on
        exit, exceptions included; raises :class:`~limits_core.RateLimitExceeded` when
        denied.

        When the block raises, a store error while releasing is not raised over it (the lease
        then expires after ``lease_ttl``)."""
        lease = await self.acquire(key, cost)
        if not lease.allowed:
            raise RateLimitExceeded(lease.decision)
        try:
            yield lease
        except BaseException:
            # The block's own error matters more than a store failing to take the lease
            # back, which then expires by itself after lease_ttl.
            with suppress(BackendError):
                await self.release(lease)
            raise
        await self.release(lease)

    async def aclose(self) -> None:
        """Close the backend."""
        await self._backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
