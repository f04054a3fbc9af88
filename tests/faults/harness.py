"""Steady load through one :class:`~limits_core.gate.Gate` per ``on_error`` policy, a fault
injected at a known time, and every call recorded.

The load is open-loop, as HTTP traffic is: a ticker starts a call every ``1 / rate`` seconds
whatever the store does, so a stalled store sees calls pile up rather than the load pause. All
three policies (``"open"``, ``"closed"`` and a fallback limiter) run at once against the same
store and the same fault, each under its own key prefix, which keeps the suite short.

Every call is keyed by the time slot it was scheduled in (``slot:<n>``, one key per
``slot_seconds``), with a limit per key that the offered load exceeds. That makes the checks
exact, with no clock alignment to guess:

- **over-admission**: per slot, the calls let through (admitted by the store, passed by
  ``"open"``, admitted by the fallback) beyond the limit. A slot that lies wholly outside the
  fault (from its injection to the last store error) is *healthy* and must show none.
- **double counts**: after the run the store's own counter of each slot is read with a peek.
  A call whose store decision failed may or may not have been counted (its reply was lost), so
  ``admitted <= counted <= admitted + failed``; anything above is a request counted twice.
  Below is a *lost* count: state the store forgot (a Redis killed without persistence).

A process starved of CPU (the machine is shared) sees calls time out that the store answered
in time. The harness measures that wait (a 10 ms timer beside the calls), sets it apart from
each call's latency, and waits, before injecting the fault and before ending the run, for a
slot the store decided whole, so the checks always have healthy slots to look at.

The harness knows the backends only through :class:`~limits_core.AsyncLimiter` and
:class:`~limits_core.gate.Gate` (and a pass-through wrapper that notes the type of each store
error), so it keeps working whatever a backend does inside.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from algorithms import FixedWindow
from backends.memory import MemoryBackend
from limits_core import AsyncBackend, AsyncLimiter, Decision, Rate
from limits_core.algorithm import Algorithm
from limits_core.gate import Gate, OnError, acheck
from limits_core.request import RequestView

__all__ = [
    "POLICIES",
    "CallRecord",
    "LoadShape",
    "PolicyResult",
    "Timeline",
    "run_fault",
]

#: The ``on_error`` policies, by the name the report uses.
POLICIES = ("open", "closed", "fallback")

#: A slot's counter must outlive the run: a window far longer than any run.
_WINDOW = 30 * 86_400.0
#: How long a run may wait, before and after the fault, for a slot that no call failed in.
_PATIENCE = 10.0

_last_error: contextvars.ContextVar[str | None] = contextvars.ContextVar("last_error", default=None)


class ErrorTap:
    """An async backend that forwards every call and notes the type of any error it raises
    in the calling task's context (each call of the load runs in a task of its own)."""

    def __init__(self, inner: AsyncBackend) -> None:
        self.inner = inner

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        try:
            return await self.inner.adecide(algorithm, key, cost, now_us, consume)
        except Exception as exc:
            _last_error.set(type(exc).__name__)
            raise

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        await self.inner.areset(algorithm, key)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class LoadShape:
    """How much load, for how long, around the fault."""

    rate: float = 120.0  # calls per second, per policy
    limit: int = 80  # per slot: below rate * slot_seconds, so every healthy slot denies some
    slot_seconds: float = 1.0
    before: float = 1.5  # seconds of load before the fault
    after: float = 2.0  # seconds of load after the fault has ended


@dataclass(frozen=True)
class CallRecord:
    """One call: when it was scheduled and started (seconds since the run began), how long it
    took, what the caller got, and the type of the store error behind it, if any."""

    slot: int
    start: float
    latency: float
    outcome: str
    error: str | None


@dataclass(frozen=True)
class Timeline:
    """When the fault began and ended, seconds since the run began."""

    fault_start: float
    fault_end: float
    #: When the event loop came late to a 10 ms timer, and by how much: ``(time it woke,
    #: lateness)``. That is time the process itself waited for a CPU (the machine is shared),
    #: which adds to the latency of every call in flight, whatever the store does.
    lags: tuple[tuple[float, float], ...] = ()

    @property
    def loop_lag(self) -> float:
        """The longest single wait for a CPU."""
        return max((lag for _, lag in self.lags), default=0.0)

    def starved(self, start: float, end: float) -> float:
        """How long the process waited for a CPU between ``start`` and ``end``."""
        return sum(max(0.0, min(end, woke) - max(start, woke - lag)) for woke, lag in self.lags)


# What the caller got from acheck (besides an exception escaping it, "raised:<type>").
ADMITTED, DENIED = "admitted", "denied"
PASSED_OPEN, UNAVAILABLE = "passed_open", "503"
FALLBACK_ADMITTED, FALLBACK_DENIED = "fallback_admitted", "fallback_denied"
LET_THROUGH = frozenset({ADMITTED, PASSED_OPEN, FALLBACK_ADMITTED})


@dataclass
class PolicyResult:
    """What one policy measured under one fault."""

    fault: str
    policy: str
    limit: int
    timeout: float
    records: list[CallRecord]
    timeline: Timeline
    counted: dict[int, int]  # the store's counter per slot, read after the run
    unhealthy: tuple[float, float] = (0.0, 0.0)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.outcomes = Counter(r.outcome for r in self.records)
        self.errors = Counter(r.error for r in self.records if r.error is not None)
        # The fault lasts until its last error, except errors of calls that waited for a CPU
        # longer than the timeout: those say the process was starved, not the store.
        ends = [
            r.start + r.latency
            for r in self.records
            if r.error is not None and self.starved(r) < self.timeout
        ]
        self.unhealthy = (self.timeline.fault_start, max([self.timeline.fault_end, *ends]))

    # -- per slot -------------------------------------------------------------------------

    def slots(self) -> list[int]:
        return sorted({r.slot for r in self.records})

    def slot_span(self, slot: int) -> tuple[float, float]:
        calls = [r for r in self.records if r.slot == slot]
        return min(r.start for r in calls), max(r.start + r.latency for r in calls)

    def healthy(self, slot: int) -> bool:
        """True when every call of ``slot`` began and ended outside the fault, and got its
        decision from the store."""
        first, last = self.slot_span(slot)
        low, high = self.unhealthy
        clean = not any(r.slot == slot and r.error is not None for r in self.records)
        return clean and (last < low or first > high)

    def _count(self, slot: int, outcomes: frozenset[str]) -> int:
        return sum(r.slot == slot and r.outcome in outcomes for r in self.records)

    def admitted(self, slot: int) -> int:
        return self._count(slot, frozenset({ADMITTED}))

    def let_through(self, slot: int) -> int:
        return self._count(slot, LET_THROUGH)

    def unknown(self, slot: int) -> int:
        """Calls whose store decision failed: counted or not, nobody knows."""
        return sum(r.slot == slot and r.error is not None for r in self.records)

    def over_admitted(self, slot: int) -> int:
        return max(0, self.let_through(slot) - self.limit)

    def double_counted(self, slot: int) -> int:
        return max(0, self.counted.get(slot, 0) - self.admitted(slot) - self.unknown(slot))

    def lost(self, slot: int) -> int:
        return max(0, self.admitted(slot) - self.counted.get(slot, 0))

    # -- totals ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        return len(self.records)

    @property
    def worst_latency(self) -> float:
        return max(r.latency for r in self.records)

    def starved(self, record: CallRecord) -> float:
        return self.timeline.starved(record.start, record.start + record.latency)

    @property
    def worst_wait(self) -> float:
        """The worst latency less the time the process waited for a CPU meanwhile: the part
        the store's timeouts must bound."""
        return max(r.latency - self.starved(r) for r in self.records)

    @property
    def errors_while_starved(self) -> int:
        """Store errors of calls that waited for a CPU longer than the timeout: a reply
        that arrived while the process was descheduled is read after its timer fired."""
        return sum(r.error is not None and self.starved(r) >= self.timeout for r in self.records)

    def healthy_slots_exist(self) -> bool:
        """At least one slot before and one after the fault, so the checks had material."""
        healthy = [s for s in self.slots() if self.healthy(s)]
        low, high = self.unhealthy
        return any(self.slot_span(s)[1] < low for s in healthy) and any(
            self.slot_span(s)[0] > high for s in healthy
        )

    def decided_after_fault(self) -> int:
        """Store decisions made after the fault had ended."""
        end = self.timeline.fault_end
        return sum(r.start > end and r.outcome in (ADMITTED, DENIED) for r in self.records)

    def over_admission(self, *, healthy: bool) -> int:
        return sum(self.over_admitted(s) for s in self.slots() if self.healthy(s) == healthy)

    @property
    def double_counts(self) -> int:
        return sum(self.double_counted(s) for s in self.slots())

    @property
    def lost_counts(self) -> int:
        return sum(self.lost(s) for s in self.slots())

    def summary(self) -> dict[str, Any]:
        """The figures of the report, JSON-ready."""
        o = self.outcomes
        return {
            "fault": self.fault,
            "policy": self.policy,
            "calls": self.calls,
            "store_decisions": o[ADMITTED] + o[DENIED],
            "errors": dict(sorted(self.errors.items())),
            "passed_open": o[PASSED_OPEN],
            "answered_503": o[UNAVAILABLE],
            "fallback_decisions": o[FALLBACK_ADMITTED] + o[FALLBACK_DENIED],
            "raised": {k: v for k, v in o.items() if k.startswith("raised:")},
            "worst_latency_s": round(self.worst_latency, 3),
            "worst_wait_s": round(self.worst_wait, 3),
            "loop_lag_s": round(self.timeline.loop_lag, 3),
            "errors_while_starved": self.errors_while_starved,
            "timeout_s": self.timeout,
            "limit_per_slot": self.limit,
            "slots": len(self.slots()),
            "healthy_slots": sum(self.healthy(s) for s in self.slots()),
            "over_admitted_healthy": self.over_admission(healthy=True),
            "over_admitted_during_fault": self.over_admission(healthy=False),
            "double_counts": self.double_counts,
            "lost_counts": self.lost_counts,
            "fault_window_s": [round(x, 3) for x in self.unhealthy],
        }


def _slot_view(slot: int) -> RequestView:
    return RequestView("GET", f"/slot/{slot}")


def _slot_key(view: RequestView) -> str:
    return "slot:" + view.path.rpartition("/")[2]


async def _call(gate: Gate[AsyncLimiter], slot: int, t0: float) -> CallRecord:
    start = time.monotonic()
    _last_error.set(None)
    try:
        outcome = await acheck(gate, _slot_view(slot))
    except Exception as exc:  # a leak past the gate: the test fails on it
        kind = f"raised:{type(exc).__name__}"
    else:
        error = _last_error.get()
        decision, reply = outcome.decision, outcome.reply
        if reply is not None and reply.status == 503:
            kind = UNAVAILABLE
        elif decision is None:
            kind = PASSED_OPEN
        elif error is not None:  # the fallback decided
            kind = FALLBACK_ADMITTED if decision.allowed else FALLBACK_DENIED
        else:
            kind = ADMITTED if decision.allowed else DENIED
    end = time.monotonic()
    return CallRecord(slot, start - t0, end - start, kind, _last_error.get())


async def run_fault(
    fault: str,
    make_backend: Callable[[str], AsyncBackend],
    inject: Callable[[], Awaitable[None]],
    *,
    configured_timeout: float,
    shape: LoadShape = LoadShape(),
) -> list[PolicyResult]:
    """Run the load through one gate per policy, ``inject()`` the fault after
    ``shape.before`` seconds, keep the load on for ``shape.after`` seconds after it returns,
    then read the store's counters; one :class:`PolicyResult` per policy.

    ``make_backend(name)`` returns a fresh backend on the store under test, isolated by
    ``name``; ``configured_timeout`` is the store's timeout, reported next to the worst latency.
    """
    algorithm = FixedWindow(Rate(shape.limit, _WINDOW))
    limiters = {p: AsyncLimiter(algorithm, ErrorTap(make_backend(p))) for p in POLICIES}
    fallback = AsyncLimiter(algorithm, MemoryBackend())
    policies: dict[str, OnError] = {"open": "open", "closed": "closed", "fallback": fallback}
    gates = {p: Gate(limiters[p], key=_slot_key, on_error=policies[p]) for p in POLICIES}
    try:
        for limiter in limiters.values():  # connect (and create any schema) before the run
            await limiter.peek("warm-up")
        done, timeline = await _load(gates, inject, shape)
        results = []
        for policy in POLICIES:
            slots = sorted({r.slot for r in done[policy]})
            counted = {s: await _counted(limiters[policy], s, shape.limit) for s in slots}
            result = PolicyResult(fault, policy, shape.limit, configured_timeout, done[policy],
                                  timeline, counted)  # fmt: skip
            results.append(result)
        return results
    finally:
        for limiter in (*limiters.values(), fallback):
            await limiter.aclose()


async def _load(
    gates: dict[str, Gate[AsyncLimiter]], inject: Callable[[], Awaitable[None]], shape: LoadShape
) -> tuple[dict[str, list[CallRecord]], Timeline]:
    """The open-loop load and the fault, as :func:`run_fault` describes them."""
    tasks: dict[str, list[asyncio.Task[CallRecord]]] = {p: [] for p in gates}
    by_slot: dict[int, list[asyncio.Task[CallRecord]]] = {}
    t0 = time.monotonic()
    stop_at: float | None = None
    marks: list[float] = []
    lags: list[tuple[float, float]] = []

    def now() -> float:
        return time.monotonic() - t0

    def clean_slot(after: float) -> bool:
        """Some slot scheduled wholly after ``after`` (and before the current one) is over,
        and the store decided every call of it."""
        current = int(now() // shape.slot_seconds)
        return any(
            after <= slot * shape.slot_seconds
            and slot < current
            and all(t.done() and t.exception() is None and t.result().error is None for t in ts)
            for slot, ts in by_slot.items()
        )

    def last_error() -> float:
        ends = [
            r.start + r.latency
            for ts in tasks.values()
            for t in ts
            if t.done() and t.exception() is None and (r := t.result()).error is not None
        ]
        return max(ends, default=0.0)

    async def wait_for_clean_slot(after: Callable[[], float]) -> None:
        # A process starved of CPU times out calls the store answered: then wait (a while)
        # for a slot the store decided whole, so that the checks have material.
        for _ in range(int(_PATIENCE / 0.1)):
            if clean_slot(after()):
                return
            await asyncio.sleep(0.1)

    async def fault_schedule() -> None:
        nonlocal stop_at
        await asyncio.sleep(shape.before)
        await wait_for_clean_slot(lambda: 0.0)
        marks.append(now())
        await inject()
        marks.append(now())
        await asyncio.sleep(shape.after)
        await wait_for_clean_slot(lambda: max(marks[-1], last_error()))
        stop_at = now()

    async def lag_probe() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            woke = time.monotonic()
            if woke - before > 0.012:
                lags.append((woke - t0, woke - before - 0.01))

    injector = asyncio.create_task(fault_schedule())
    prober = asyncio.create_task(lag_probe())
    # The gate logs every store failure; hundreds of lines per run say nothing more here.
    gate_logger = logging.getLogger("limits_core.gate")
    level = gate_logger.level
    gate_logger.setLevel(logging.CRITICAL)
    try:
        n = 0
        while stop_at is None or n / shape.rate < stop_at:
            if injector.done():
                injector.result()  # a fault that failed to inject fails the run now
            due = n / shape.rate
            delay = t0 + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            slot = int(due // shape.slot_seconds)
            for policy, gate in gates.items():
                task = asyncio.create_task(_call(gate, slot, t0))
                tasks[policy].append(task)
                by_slot.setdefault(slot, []).append(task)
            n += 1
        done = {p: [await task for task in ts] for p, ts in tasks.items()}
    finally:
        gate_logger.setLevel(level)
        everything = [injector, prober, *(t for ts in tasks.values() for t in ts)]
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)
    return done, Timeline(marks[0], marks[1], lags=tuple(lags))


async def _counted(limiter: AsyncLimiter, slot: int, limit: int) -> int:
    """The store's counter of ``slot``, from a peek of cost 1 (retried while the store is
    still recovering)."""
    for attempt in range(50):
        try:
            peek = await limiter.peek(f"slot:{slot}")
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
        else:
            return limit - peek.remaining - int(peek.allowed)
    raise AssertionError("unreachable")
