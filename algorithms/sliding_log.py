"""Sliding log: exact; at most ``limit`` cost in any trailing period."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import ClassVar

from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["SlidingLog"]

#: Entries that may pile up before the front of a log is compacted away.
COMPACT_AFTER = 32


#: ``(times, totals, lo, hi)``: the admitted requests still in the window are the entries
#: ``[lo, hi)`` of two buffers, ``times[i]`` when request ``i`` was admitted and ``totals[i]``
#: the cost admitted up to and including it. Successive states of one key share the buffers,
#: which are only ever appended to: appending past ``hi`` leaves every earlier state's meaning
#: intact, so states stay values while the common case (extending the newest state) costs O(1)
#: amortised instead of copying the log. (Flat, rather than an object holding the buffers: one
#: pointer less to follow on every decision.)
SlidingLogState = tuple[list[int], list[int], int, int]


@dataclass(frozen=True, init=False)
class SlidingLog:
    """Exact limit over a trailing window: at most ``rate.limit`` cost in any ``rate.period``.

    Cost admitted at time ``t`` counts against requests at ``now`` while ``now - t < period``:
    a request exactly one period old no longer counts. A request is denied only when it would
    not fit, and then changes nothing.

    - ``remaining``: ``limit`` minus the cost admitted in the trailing period.
    - ``reset_after``: time until every logged request has left the window.
    - ``retry_after``: time until enough cost has left for this request to fit; ``inf`` if
      ``cost > limit``.
    - Memory per key: a timestamp and a running total per admitted request still in the
      window, so at most ``limit`` entries (each request costs at least 1), plus slack of at
      most as much again before compaction.

    :meth:`refund` takes ``amount`` units off the newest entries of the log, the most recent
    admissions (the cost a caller gives back is the cost it was just admitted), and drops the
    entries left empty, so the log stays bounded. A log with no unit left in the window is the
    same as no state, and is deleted.
    """

    kind: ClassVar[str] = "sliding_log"
    rate: Rate
    namespace: str = field(init=False, repr=False, compare=False)
    _limit: int = field(init=False, repr=False, compare=False)
    _period_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str) -> None:
        rate = Rate.coerce(rate)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "_limit", rate.limit)
        object.__setattr__(self, "_period_us", rate.period_us)
        object.__setattr__(self, "namespace", f"sl:{rate.limit}:{rate.period_us}")

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def max_state_ttl_us(self) -> int:
        return self._period_us

    def step(
        self, state: SlidingLogState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        limit, period = self._limit, self._period_us
        if state is not None:
            times, totals, lo, hi = state
            newest = times[hi - 1]
            if now_us < newest:
                now_us = newest
            # Requests admitted at or before now - period have left the window; the search is
            # skipped when none has (a full log's usual case).
            cutoff = now_us - period
            if times[lo] > cutoff or (lo := bisect_right(times, cutoff, lo, hi)) < hi:
                # Running totals strictly increase (each request costs at least 1): used > 0.
                base = totals[lo - 1] if lo else 0
                top = totals[hi - 1]
                used = top - base
                excess = used + cost - limit
                if excess > 0:  # always so when cost > limit
                    if cost > limit:
                        retry_us = NEVER
                    else:
                        # The request fits once the oldest requests holding `excess` cost have
                        # left: the oldest one alone when a single unit is missing.
                        retry_us = (
                            times[lo if excess == 1 else bisect_left(totals, base + excess, lo, hi)]
                            - cutoff
                        )
                    return (
                        decision_from_us(False, limit, limit - used, newest - cutoff, retry_us),
                        state,
                        0,
                    )
                decision = decision_from_us(True, limit, limit - used - cost, period, 0)
                if not consume:
                    return decision, state, 0
                if hi == len(times) and lo < COMPACT_AFTER + (hi - lo):
                    times.append(now_us)
                    totals.append(top + cost)
                    return decision, (times, totals, lo, hi + 1), now_us + period
                # Someone extended these buffers past our state, or their dead front grew
                # large: copy the live entries into fresh ones.
                fresh_times, fresh_totals = copy_entries(times, totals, lo, hi)
                fresh_times.append(now_us)
                fresh_totals.append(used + cost)
                return decision, (fresh_times, fresh_totals, 0, hi - lo + 1), now_us + period
        # Nothing in the window.
        if cost > limit:
            return decision_from_us(False, limit, limit, 0, NEVER), state, 0
        decision = decision_from_us(True, limit, limit - cost, period, 0)
        if not consume:
            return decision, state, 0
        return decision, ([now_us], [cost], 0, 1), now_us + period

    def refund(self, state: SlidingLogState | None, now_us: int, amount: int) -> RefundResult:
        """Take ``amount`` units off the newest entries (all the live ones at most)."""
        if state is None:
            return None, 0
        times, totals, lo, hi = state
        if now_us < times[hi - 1]:
            now_us = times[hi - 1]
        live = bisect_right(times, now_us - self._period_us, lo, hi)
        if live == hi or amount >= totals[hi - 1] - (totals[live - 1] if live else 0):
            return None, 0
        # Keep every unit up to the running total `keep`; `last` is the entry holding it.
        keep = totals[hi - 1] - amount
        last = bisect_left(totals, keep, live, hi)
        # States share the buffers (see SlidingLogState): the shortened log is a fresh copy.
        # The entries that left the window stay, as after a hit, so every backend keeps the same.
        fresh_times, fresh_totals = copy_entries(times, totals, lo, last + 1)
        fresh_totals[-1] = keep - (totals[lo - 1] if lo else 0)
        return (fresh_times, fresh_totals, 0, len(fresh_times)), times[last] + self._period_us


def copy_entries(
    times: list[int], totals: list[int], lo: int, hi: int
) -> tuple[list[int], list[int]]:
    """Fresh buffers holding the entries ``[lo, hi)``, their running totals counted from 0.

    (A function of its own: a comprehension in ``step`` would make ``base`` a closure cell there,
    which every decision pays for.)
    """
    base = totals[lo - 1] if lo else 0
    return times[lo:hi], [total - base for total in totals[lo:hi]]
