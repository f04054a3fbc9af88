"""The facades users hold: :class:`Limiter` (sync) and :class:`AsyncLimiter` (asyncio).

Both share one base that validates keys and costs and reads the clock, so the twins differ
only in the one call they make to their backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from limits_core.algorithm import Algorithm, Refundable
from limits_core.backend import AsyncBackend, AsyncRefundingBackend, Backend, RefundingBackend
from limits_core.clock import Clock
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError
from limits_core.policy import Policy
from limits_core.validation import MAX_KEY_BYTES as _MAX
from limits_core.validation import check_cost, check_key

__all__ = ["AsyncLimiter", "Limiter"]


# hit() and peek() are the hot path: each accepts the common case (a printable ASCII key of at
# most 512 characters, an int cost from 1 to limit + 1) inline, and calls _checked() for the
# rest. The four copies are kept identical by tests/test_limiter_twins.py.


class _LimiterBase:
    __slots__ = ("_algorithm", "_clock", "_max_cost", "_max_refund")

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
        checked = []
        for request in requests:
            if not isinstance(request, tuple) or len(request) != 2:
                raise ConfigurationError(f"a request must be a (key, cost) pair, got {request!r}")
            checked.append(self._checked(*request))
        clock = self._clock
        return checked, None if clock is None else clock.now_us()

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
        self._decide = backend.decide
        self._refund: Callable[[Algorithm, str, int, int | None], Decision] = (
            backend.refund if isinstance(backend, RefundingBackend) else _cannot_refund(backend)
        )

    @property
    def backend(self) -> Backend:
        return self._backend

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` on ``key``; consume the cost only if allowed."""
        if not (
            type(key) is str and key.isascii() and key.isprintable() and 0 < len(key) <= _MAX
        ) or (type(cost) is not int or not 0 < cost <= self._max_cost):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return self._decide(
            self._algorithm, key, cost, None if clock is None else clock.now_us(), True
        )

    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision :meth:`hit` would give now, consuming nothing."""
        if not (
            type(key) is str and key.isascii() and key.isprintable() and 0 < len(key) <= _MAX
        ) or (type(cost) is not int or not 0 < cost <= self._max_cost):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return self._decide(
            self._algorithm, key, cost, None if clock is None else clock.now_us(), False
        )

    def hit_many(self, requests: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide ``(key, cost)`` requests at one time, in order (each sees the effect of those
        before it), in one round trip when the backend can (``decide_many``); a decision per
        request. Every request is checked first: bad input touches nothing."""
        checked, now_us = self._many(requests)
        many = getattr(self._backend, "decide_many", None)
        if many is None:
            return [self._decide(self._algorithm, k, c, now_us, True) for k, c in checked]
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
        now_us = None if self._clock is None else self._clock.now_us()
        return self._refund(self._algorithm, key, amount, now_us)

    def reset(self, key: str) -> None:
        """Forget everything stored for ``key``: its full limit is available again."""
        self._backend.reset(self._algorithm, check_key(key))

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
        self._decide = backend.adecide
        self._refund: Callable[[Algorithm, str, int, int | None], Awaitable[Decision]] = (
            backend.arefund
            if isinstance(backend, AsyncRefundingBackend)
            else _cannot_refund(backend)
        )

    @property
    def backend(self) -> AsyncBackend:
        return self._backend

    async def hit(self, key: str, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` on ``key``; consume the cost only if allowed."""
        if not (
            type(key) is str and key.isascii() and key.isprintable() and 0 < len(key) <= _MAX
        ) or (type(cost) is not int or not 0 < cost <= self._max_cost):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return await self._decide(
            self._algorithm, key, cost, None if clock is None else clock.now_us(), True
        )

    async def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision :meth:`hit` would give now, consuming nothing."""
        if not (
            type(key) is str and key.isascii() and key.isprintable() and 0 < len(key) <= _MAX
        ) or (type(cost) is not int or not 0 < cost <= self._max_cost):
            key, cost = self._checked(key, cost)
        clock = self._clock
        return await self._decide(
            self._algorithm, key, cost, None if clock is None else clock.now_us(), False
        )

    async def hit_many(self, requests: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide ``(key, cost)`` requests at one time, in order (each sees the effect of those
        before it), in one round trip when the backend can (``decide_many``); a decision per
        request. Every request is checked first: bad input touches nothing."""
        checked, now_us = self._many(requests)
        many = getattr(self._backend, "adecide_many", None)
        if many is None:
            return [await self._decide(self._algorithm, k, c, now_us, True) for k, c in checked]
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
        now_us = None if self._clock is None else self._clock.now_us()
        return await self._refund(self._algorithm, key, amount, now_us)

    async def reset(self, key: str) -> None:
        """Forget everything stored for ``key``: its full limit is available again."""
        await self._backend.areset(self._algorithm, check_key(key))

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
