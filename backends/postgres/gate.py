"""A bounded wait for a pool connection, with one timer for all waiting tasks."""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["PoolGate"]


class PoolGate:
    """Lets at most ``size`` tasks use a pool at once; the others wait in FIFO order, each at
    most ``timeout`` seconds (plus up to a quarter of it), then get :class:`TimeoutError`.

    Why not ``asyncio.timeout()`` around ``pool.acquire()``: it arms and cancels a timer on
    every call, microseconds that every decision pays whenever tasks outnumber connections.
    Here a waiting task parks on a plain future; one periodic check, scheduled only while some
    task waits, fails the futures whose deadline has passed. Nothing is cancelled, so no stray
    cancellation can reach the caller. A task admitted by the gate finds a free connection in
    the pool, provided every user of the pool goes through the gate.
    """

    __slots__ = ("_free", "_period", "_timeout", "_timer", "_waiters")

    def __init__(self, size: int, timeout: float) -> None:
        self._free = size
        self._timeout = timeout
        self._period = min(timeout / 4, 0.1)
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def try_enter(self) -> bool:
        """Take a free place without waiting, if there is one."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def enter(self) -> None:
        """Take a place, waiting for one at most about ``timeout`` seconds."""
        if self.try_enter():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append((loop.time() + self._timeout, waiter))
        if self._timer is None:
            self._timer = loop.call_later(self._period, self._expire, loop)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.leave()  # given a place just as we were cancelled: pass it on
            raise

    def leave(self) -> None:
        """Give a place back: to the longest waiting task, if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def close(self) -> None:
        """Stop the periodic check (waiting tasks then wait until they are given a place)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        waiters = self._waiters
        # Every wait has the same timeout, so deadlines grow along the queue.
        while waiters and (waiters[0][1].done() or waiters[0][0] <= now):
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_exception(
                    TimeoutError(f"no pool connection became free within {self._timeout:g}s")
                )
        self._timer = loop.call_later(self._period, self._expire, loop) if waiters else None
