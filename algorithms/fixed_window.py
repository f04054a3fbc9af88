"""Fixed window: at most ``limit`` per window, the window opening on the first admitted hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["FixedWindow"]

FixedWindowState = tuple[int, int]  # (window start, cost admitted in the window)


@dataclass(frozen=True, init=False)
class FixedWindow:
    """At most ``rate.limit`` cost per window of ``rate.period``.

    The semantics of the classic Redis script that INCRs a counter and sets its EXPIRE on the
    first hit: a window opens at the first *admitted* hit on a key with no live window and
    covers ``[start, start + period)``; a hit exactly one period after ``start`` opens a new
    window. Windows are per key, not aligned to the clock, so keys do not all reset at once.

    - ``remaining``: ``limit`` minus the cost admitted in the current window.
    - ``reset_after``: time until the window ends (``0`` with no live window).
    - ``retry_after``: time until the window ends when denied; ``inf`` if ``cost > limit``.
    - Memory per key: two integers (start, count).

    A burst of up to ``2 * limit`` can pass across a window boundary; choose
    :class:`~algorithms.SlidingLog` or a sliding window counter when that matters.

    :meth:`refund` lowers the live window's count, down to zero; the window keeps its start
    and end. A window that has ended has nothing to give back (its state is deleted).
    """

    kind: ClassVar[str] = "fixed_window"
    rate: Rate
    namespace: str = field(init=False, repr=False, compare=False)
    _limit: int = field(init=False, repr=False, compare=False)
    _period_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str) -> None:
        rate = Rate.coerce(rate)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "_limit", rate.limit)
        object.__setattr__(self, "_period_us", rate.period_us)
        object.__setattr__(self, "namespace", f"fw:{rate.limit}:{rate.period_us}")

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def max_state_ttl_us(self) -> int:
        return self._period_us

    def step(
        self, state: FixedWindowState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        limit = self._limit
        if state is not None:
            start, count = state
            if now_us < start:
                now_us = start
            elif now_us - start >= self._period_us:
                start, count = now_us, 0
        else:
            start, count = now_us, 0
        left = start + self._period_us - now_us
        if count + cost > limit:  # always so when cost > limit
            retry_us = NEVER if cost > limit else left
            reset_us = left if count else 0  # no window is open before its first hit
            return decision_from_us(False, limit, limit - count, reset_us, retry_us), state, 0
        count += cost
        return (
            decision_from_us(True, limit, limit - count, left, 0),
            (start, count),
            start + self._period_us,
        )

    def refund(self, state: FixedWindowState | None, now_us: int, amount: int) -> RefundResult:
        """Give back to the live window: ``n = max(0, n - amount)``."""
        if state is None:
            return None, 0
        start, count = state
        if now_us - start >= self._period_us:
            return None, 0
        return (start, max(0, count - amount)), start + self._period_us
