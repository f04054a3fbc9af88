"""Concurrent decisions of the async PostgreSQL backend, coalesced into batch statements.

Every decision made while the event loop is busy joins its algorithm's queue instead of taking
a connection of its own. The first one starts a sender task; the task runs on the loop's next
iteration (no timer: an idle system adds no latency), acquires a pool connection, and only then
takes the queue (up to ``max_batch`` requests), so the batches grow by themselves while
the pool is busy and stay single decisions while it is idle. It sends them as one call of the
table's batch function: one round trip and one commit for the batch. Requests left over, and
requests arriving meanwhile, go out with the next sender, on another connection: several
batches may be in flight at once.

Errors: a batch is one transaction, so it is counted entirely or not at all. When it fails,
every waiter of the batch gets the error (a lost connection: BackendUnavailable, never a
retry, since the commit may have happened). A waiter cancelled before its batch is sent is
left out of it; one cancelled in flight leaves the batch running for the others, and only
when every waiter of a batch is cancelled is the statement itself cancelled, as a single
decision's would be.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from backends.postgres.batch import BatchCall, decode_many
from limits_core.algorithm import Algorithm
from limits_core.coalescing import BatchRecorder, CoalescingStats
from limits_core.decision import Decision
from limits_core.errors import BackendError, LimitsCoreError

__all__ = ["Coalescer", "CoalescingStats"]


class _Flight:
    """A batch in flight: its sender task, and how many of its waiters still wait."""

    __slots__ = ("live", "task")

    def __init__(self, live: int, task: asyncio.Task[Any] | None) -> None:
        self.live = live
        self.task = task


class _Request:
    """One decision waiting in a queue, then in a batch."""

    __slots__ = ("consume", "cost", "flight", "future", "key", "now_us")

    def __init__(
        self,
        key: str,
        cost: int,
        now_us: int | None,
        consume: bool,
        future: asyncio.Future[Decision],
    ) -> None:
        self.key = key  # as stored: prefixed
        self.cost = cost  # capped
        self.now_us = now_us
        self.consume = consume
        self.future = future
        self.flight: _Flight | None = None  # set once a sender has taken it


class _Queue:
    """One algorithm's requests waiting for a sender."""

    __slots__ = ("call", "requests", "sending", "since")

    def __init__(self, call: BatchCall) -> None:
        self.call = call
        self.requests: deque[_Request] = deque()
        self.sending = False  # a sender is on its way and will take the requests
        self.since = 0.0  # when the oldest waiting request arrived (perf_counter)


class Coalescer:
    """Coalesces concurrent decisions into batches (see the module's docstring).

    Args:
        plan: the batch call of an algorithm (raises ConfigurationError for one the backend
            cannot decide).
        run: ``await run(work)`` calls ``work(connection)`` on a pool connection, with errors
            translated to limits-core errors, and gives the connection back.
        max_batch: most requests per statement.
    """

    __slots__ = (
        "_max_batch",
        "_plan",
        "_queues",
        "_recorder",
        "_run",
        "_senders",
    )

    def __init__(
        self,
        plan: Callable[[Algorithm], BatchCall],
        run: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]],
        max_batch: int,
    ) -> None:
        self._plan = plan
        self._run = run
        self._max_batch = max_batch
        self._queues: dict[str, _Queue] = {}  # by algorithm.namespace
        self._senders: set[asyncio.Task[None]] = set()
        self._recorder = BatchRecorder()

    async def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        """Decide one request in the next batch of its algorithm."""
        queue = self._queues.get(algorithm.namespace) or self._new_queue(algorithm)
        call = queue.call
        max_cost = call.max_cost
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        request = _Request(
            call.key_prefix + key, cost if cost <= max_cost else max_cost, now_us, consume, future
        )
        queue.requests.append(request)
        if not queue.sending:
            queue.sending = True
            queue.since = perf_counter()
            self._start_sender(queue)
        try:
            return await future
        except asyncio.CancelledError:
            flight = request.flight
            if flight is not None:
                flight.live -= 1
                if flight.live == 0 and flight.task is not None and not flight.task.done():
                    # Nobody waits for this batch any more: cancel its statement, and return
                    # once it is cancelled, as a single decision would.
                    flight.task.cancel()
                    await asyncio.wait({flight.task})
            raise

    def stats(self) -> CoalescingStats:
        """A snapshot of the counters and latency percentiles."""
        return self._recorder.snapshot()

    async def drain(self, within: float) -> None:
        """Wait (at most ``within`` seconds) for the batches under way to finish."""
        if self._senders:
            await asyncio.wait(set(self._senders), timeout=within)

    # -- internals ----------------------------------------------------------------------------

    def _new_queue(self, algorithm: Algorithm) -> _Queue:
        queue = _Queue(self._plan(algorithm))
        self._queues[algorithm.namespace] = queue
        return queue

    def _start_sender(self, queue: _Queue) -> None:
        task = asyncio.get_running_loop().create_task(self._send(queue))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    def _take(self, queue: _Queue) -> tuple[list[_Request], float]:
        """Up to ``max_batch`` waiting requests (cancelled ones dropped) and when the
        oldest arrived; hands what remains to a new sender."""
        requests, limit = queue.requests, self._max_batch
        taken: list[_Request] = []
        while requests and len(taken) < limit:
            request = requests.popleft()
            if not request.future.done():
                taken.append(request)
        since = queue.since
        if requests:
            queue.since = perf_counter()
            self._start_sender(queue)
        else:
            queue.sending = False
        return taken, since

    async def _send(self, queue: _Queue) -> None:
        call = queue.call
        batch: list[_Request] = []
        since = sent = 0.0

        async def work(connection: Any) -> Any:
            nonlocal since, sent
            taken, since = self._take(queue)
            if not taken:
                return None
            batch.extend(taken)
            flight = _Flight(len(taken), asyncio.current_task())
            for request in taken:
                request.flight = flight
            sent = perf_counter()
            if len(taken) == 1:  # alone (an idle system): the plain call costs the server less
                single, request = call.single, taken[0]
                return await connection.fetchval(
                    single.sql,
                    request.key,
                    request.cost,
                    request.now_us,
                    request.consume,
                    *single.args,
                )
            sql, args = call.statement(
                [request.key for request in taken],
                [request.cost for request in taken],
                [request.now_us for request in taken],
                [request.consume for request in taken],
            )
            return await connection.fetchval(sql, *args)

        try:
            reply = await self._run(work)
        except BaseException as exc:
            if not batch and queue.sending:
                # No connection came: the requests this sender was to take fail with it.
                batch, _ = self._take(queue)
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not batch:
            return
        done = perf_counter()
        self._recorder.record(len(batch), sent - since, done - since)
        for request, decision in zip(batch, decode_many(reply, call.limit), strict=True):
            future = request.future
            if not future.done():
                future.set_result(decision)

    def _fail(self, batch: list[_Request], exc: BaseException) -> None:
        if isinstance(exc, Exception):
            error = exc if isinstance(exc, LimitsCoreError) else BackendError(repr(exc))
            for request in batch:
                future = request.future
                if not future.done():
                    # One instance per waiter: each raise then has a traceback of its own.
                    future.set_exception(copy.copy(error))
        else:
            for request in batch:
                request.future.cancel()
