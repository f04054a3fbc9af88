"""Coalescing: decisions requested concurrently on one event loop go to Redis together.

The first request of a batch creates the task that sends it; the task first runs on the
loop's next iteration, so every request made by the callbacks and tasks of the current
iteration joins the batch, and an idle loop adds no wait. A batch closes at ``max_batch``
requests; the next request opens another, sent in parallel on another connection.

A request whose caller is cancelled before its batch is sent is left out (never counted); once
sent, its reply is read and dropped, and the batch goes on for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any

from backends.redis._batch import Outcome
from backends.redis._plan import AnyPlan
from limits_core.coalescing import BatchRecorder, CoalescingStats
from limits_core.decision import Decision
from limits_core.errors import BackendUnavailable

__all__ = ["Coalescer", "CoalescingStats"]

Call = tuple[AnyPlan, tuple[Any, ...]]
_INTERRUPTED = (
    "a batch of Redis calls was interrupted: the decision may or may not have been applied"
)


class _Batch:
    __slots__ = ("calls", "futures", "loop", "opened")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[Call] = []
        self.futures: list[asyncio.Future[Decision]] = []
        self.opened = perf_counter()


class Coalescer:
    """Gathers requests into batches and has ``run(calls) -> outcomes`` decide each batch."""

    __slots__ = ("_max_batch", "_open", "_recorder", "_run", "_tasks")

    def __init__(
        self, run: Callable[[Sequence[Call]], Awaitable[list[Outcome | None]]], max_batch: int
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._open: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recorder = BatchRecorder()

    def submit(self, plan: AnyPlan, command: tuple[Any, ...]) -> asyncio.Future[Decision]:
        """A future of the decision; the call joins the open batch, or opens one."""
        batch = self._open
        loop = asyncio.get_running_loop()
        if batch is None or batch.loop is not loop or len(batch.calls) >= self._max_batch:
            batch = self._open = _Batch(loop)
            task = loop.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[Decision] = loop.create_future()
        batch.calls.append((plan, command))
        batch.futures.append(future)
        return future

    async def _send(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        futures = batch.futures
        live = [i for i, future in enumerate(futures) if not future.done()]
        if not live:
            return
        if len(live) < len(futures):
            futures = [futures[i] for i in live]
            calls = [batch.calls[i] for i in live]
        else:
            calls = batch.calls
        sent = perf_counter()
        outcomes: list[Outcome | None] = []
        try:
            outcomes = await self._run(calls)
        finally:
            # Whatever happened (a cancelled task included), no caller is left waiting.
            for future, outcome in zip(futures, outcomes or [None] * len(futures), strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Decision):
                    future.set_result(outcome)
                else:
                    future.set_exception(outcome or BackendUnavailable(_INTERRUPTED))
            self._recorder.record(len(calls), sent - batch.opened, perf_counter() - batch.opened)

    @property
    def stats(self) -> CoalescingStats:
        return self._recorder.snapshot()

    async def drain(self) -> None:
        """Wait for the batches in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
