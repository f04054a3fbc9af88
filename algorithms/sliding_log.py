"""Sliding log: exact; at most ``limit`` cost in any trailing period."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import ClassVar

from limits_core.algorithm import NEVER, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["SlidingLog"]

#: One timestamp per admitted unit of cost, oldest first.
SlidingLogState = tuple[int, ...]


@dataclass(frozen=True, init=False)
class SlidingLog:
    """Exact limit over a trailing window: at most ``rate.limit`` cost in any ``rate.period``.

    An admitted unit of cost at time ``t`` counts against requests at ``now`` while
    ``now - t < period``: a unit exactly one period old no longer counts. A request is denied
    only when it would not fit, and then changes nothing.

    - ``remaining``: ``limit`` minus the cost admitted in the trailing period.
    - ``reset_after``: time until every logged unit has left the window.
    - ``retry_after``: time until enough units have left for this request to fit; ``inf`` if
      ``cost > limit``.
    - Memory per key: one timestamp per admitted unit still in the window, so at most
      ``limit`` integers.
    """

    kind: ClassVar[str] = "sliding_log"
    rate: Rate
    _limit: int = field(init=False, repr=False, compare=False)
    _period_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str) -> None:
        rate = Rate.coerce(rate)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "_limit", rate.limit)
        object.__setattr__(self, "_period_us", rate.period_us)

    @property
    def namespace(self) -> str:
        return f"sl:{self._limit}:{self._period_us}"

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def max_state_ttl_us(self) -> int:
        return self._period_us

    def step(self, state: SlidingLogState | None, now_us: int, cost: int) -> StepResult:
        limit, period = self._limit, self._period_us
        if state:
            if now_us < state[-1]:
                now_us = state[-1]
            # Units logged at or before now - period have left the window.
            live = state[bisect_right(state, now_us - period) :]
        else:
            live = ()
        used = len(live)
        reset_us = live[-1] + period - now_us if live else 0
        if cost > limit:
            return decision_from_us(False, limit, limit - used, reset_us, NEVER), state, 0
        excess = used + cost - limit
        if excess > 0:
            # The request fits once the `excess` oldest units have left the window.
            retry_us = live[excess - 1] + period - now_us
            return decision_from_us(False, limit, limit - used, reset_us, retry_us), state, 0
        new_state = live + (now_us,) * cost
        return (
            decision_from_us(True, limit, limit - used - cost, period, 0),
            new_state,
            now_us + period,
        )
