"""A bounded wait for a pool connection, with one timer for all waiting tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

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

    A task done with its connection can also :meth:`hand_over` the connection itself, with its
    place, to the longest waiting task: while tasks outnumber connections, connections go from
    task to task without the pool's release and acquire (which cost asyncpg a task and a few
    futures each). When nobody waits, the connection goes back to the pool as usual, so an idle
    backend holds none. ``release`` gives back a connection handed to a task that was cancelled
    before it could use it, when no other task waits for it.
    """

    __slots__ = ("_free", "_period", "_release", "_returning", "_timeout", "_timer", "_waiters")

    def __init__(
        self,
        size: int,
        timeout: float,
        release: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self._free = size
        self._timeout = timeout
        self._period = min(timeout / 4, 0.1)
        self._release = release
        self._returning: set[asyncio.Task[None]] = set()
        self._waiters: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def try_enter(self) -> bool:
        """Take a free place without waiting, if there is one."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def enter(self) -> Any:
        """Take a place, waiting for one at most about ``timeout`` seconds; return the
        connection handed over with it, or None (then take one from the pool)."""
        if self.try_enter():
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append((loop.time() + self._timeout, waiter))
        if self._timer is None:
            self._timer = loop.call_later(self._period, self._expire, loop)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on(waiter.result())  # given a place just as we were cancelled
            raise

    def leave(self) -> None:
        """Give a place back: to the longest waiting task, if any."""
        if not self._wake(None):
            self._free += 1

    def hand_over(self, connection: Any) -> bool:
        """Give ``connection`` and its place to the longest waiting task, if any; False when
        none waits, or the gate has no ``release`` (then release the connection to the pool,
        and :meth:`leave`)."""
        return self._release is not None and self._wake(connection)

    def _wake(self, connection: Any) -> bool:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def _pass_on(self, connection: Any) -> None:
        release = self._release
        if connection is None or release is None:
            self.leave()
        elif not self.hand_over(connection):
            task = asyncio.get_running_loop().create_task(self._give_back(release, connection))
            self._returning.add(task)
            task.add_done_callback(self._returning.discard)

    async def _give_back(self, release: Callable[[Any], Awaitable[None]], connection: Any) -> None:
        try:
            await release(connection)
        finally:
            self.leave()

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
