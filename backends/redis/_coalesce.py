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
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from backends.redis._batch import Outcome
from backends.redis._plan import Plan, PolicyPlan
from limits_core.decision import Decision
from limits_core.errors import BackendUnavailable

__all__ = ["Coalescer", "CoalescingStats"]

Call = tuple[Plan | PolicyPlan, tuple[Any, ...]]
#: Latencies kept for the percentiles: the most recent batches only.
_WINDOW = 1024
_INTERRUPTED = (
    "a batch of Redis calls was interrupted: the decision may or may not have been applied"
)


@dataclass(frozen=True, slots=True)
class CoalescingStats:
    """What coalescing did so far: batch sizes, and latencies (seconds) over the last 1,024
    batches. ``queue_wait`` runs from a batch's first request to its sending, ``latency`` to
    its last reply read: the wait of the batch's oldest request."""

    batches: int = 0
    decisions: int = 0
    max_batch_size: int = 0
    mean_batch_size: float = 0.0
    queue_wait_p50: float = 0.0
    queue_wait_p99: float = 0.0
    latency_p50: float = 0.0
    latency_p99: float = 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class _Batch:
    __slots__ = ("calls", "futures", "loop", "opened")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[Call] = []
        self.futures: list[asyncio.Future[Decision]] = []
        self.opened = perf_counter()


class Coalescer:
    """Gathers requests into batches and has ``run(calls) -> outcomes`` decide each batch."""

    __slots__ = ("_batches", "_decisions", "_max_batch", "_max_seen", "_open", "_run", "_tasks",
                 "_timings")  # fmt: skip

    def __init__(
        self, run: Callable[[Sequence[Call]], Awaitable[list[Outcome | None]]], max_batch: int
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._open: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches = self._decisions = self._max_seen = 0
        self._timings: deque[tuple[float, float]] = deque(maxlen=_WINDOW)

    def submit(self, plan: Plan | PolicyPlan, command: tuple[Any, ...]) -> asyncio.Future[Decision]:
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
            self._record(len(calls), sent - batch.opened, perf_counter() - batch.opened)

    def _record(self, size: int, wait: float, latency: float) -> None:
        self._batches += 1
        self._decisions += size
        self._max_seen = max(self._max_seen, size)
        self._timings.append((wait, latency))

    @property
    def stats(self) -> CoalescingStats:
        waits = [t[0] for t in self._timings]
        latencies = [t[1] for t in self._timings]
        return CoalescingStats(
            batches=self._batches,
            decisions=self._decisions,
            max_batch_size=self._max_seen,
            mean_batch_size=self._decisions / self._batches if self._batches else 0.0,
            queue_wait_p50=_percentile(waits, 0.5),
            queue_wait_p99=_percentile(waits, 0.99),
            latency_p50=_percentile(latencies, 0.5),
            latency_p99=_percentile(latencies, 0.99),
        )

    async def drain(self) -> None:
        """Wait for the batches in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
