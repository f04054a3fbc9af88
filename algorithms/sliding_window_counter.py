"""Sliding window counter: Cloudflare's weighted estimate over two aligned windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from algorithms._exact import EXACT, ceil_div
from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.errors import ConfigurationError
from limits_core.rate import Rate

__all__ = ["SlidingWindowCounter"]

#: (time of the newest admission, cost admitted in the window before that admission's window,
#: cost admitted in that admission's window); the window's start is ``last - last % period``.
SlidingWindowCounterState = tuple[int, int, int]


@dataclass(frozen=True, init=False)
class SlidingWindowCounter:
    """Approximately ``rate.limit`` per trailing ``rate.period``, from two counters.

    Time is cut into windows ``[k * period, (k + 1) * period)`` aligned to the epoch, so the
    window before the current one is always the previous period. A key counts the cost
    admitted in the current window (``curr``) and in the one before (``prev``). At ``e``
    microseconds into the current window, the trailing period is estimated as Cloudflare does,
    assuming ``prev`` was spread evenly over its window::

        estimate = prev * (period - e) / period + curr

    and a request of ``cost`` is admitted iff ``estimate + cost <= limit``. The comparison is
    exact, in integers: ``ceil(prev * (period - e) / period) + curr + cost <= limit``. A
    denied request changes nothing. At a window boundary ``curr`` becomes ``prev`` (``e = 0``
    gives it full weight, so the boundary itself frees nothing); a window with no admission
    counts zero.

    - ``remaining``: ``floor(limit - estimate)`` after this request.
    - ``reset_after``: time until the estimate reaches 0: the end of the *next* window when
      ``curr > 0``, the end of the current one when only ``prev > 0``.
    - ``retry_after``: the exact smallest wait after which the request fits (the estimate only
      decreases with time); ``inf`` if ``cost > limit``.
    - Memory per key: three integers (time of the newest admission, prev, curr).

    **Error bound against the exact log.** Let ``a`` be the cost admitted in the part of the
    previous window still inside the trailing period ``(now - period, now]``, so
    ``0 <= a <= prev``, and let the exact count be ``a + curr``. Then::

        -prev * e / period  <=  estimate - exact  <=  prev * (period - e) / period

    so the estimate is never off by more than ``prev <= limit``. The upper side causes false
    denials (``prev`` came early in its window); the lower side over-admission. Since every
    admission satisfies ``curr + cost <= limit - prev * (period - e) / period``, the cost
    admitted in any trailing period ending at an admission at ``e`` is at most::

        limit + prev * e / period  <=  2 * limit - limit / period  <  2 * limit

    that is at most ``2 * limit - 1`` (Cloudflare's "never more than twice the limit"); and
    any aligned window holds at most ``limit``. Over-admission needs ``prev`` to come late in
    its window and the current window to be near its end: traffic spread evenly over time
    stays close to the limit (Cloudflare reported 0.003 % of requests wrongly allowed or
    limited on its traffic).

    ``limit * period_us`` must be below 2**53 (for instance at most 104,249 per day or
    2,501,999 per hour), so every intermediate is exact in a Lua double; larger rates
    are rejected with a ``ConfigurationError``. Per key, time never runs backwards: a ``now``
    before the newest admission is treated as that time (earlier, the estimate would be
    larger than the one that admitted it).

    :meth:`refund` lowers the current window's count, down to zero. It does not reach into
    the previous window: cost admitted there already weighs less every microsecond, and
    giving it back would need to know when in that window it came. A key with nothing
    admitted in the current window has nothing to give back.
    """

    kind: ClassVar[str] = "sliding_window_counter"
    rate: Rate
    namespace: str = field(init=False, repr=False, compare=False)
    _limit: int = field(init=False, repr=False, compare=False)
    _period_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str) -> None:
        rate = Rate.coerce(rate)
        period_us = rate.period_us
        if rate.limit * period_us >= EXACT:
            raise ConfigurationError(
                f"SlidingWindowCounter({str(rate)!r}) cannot be counted exactly: "
                "limit * period in microseconds must stay below 2**53; use a shorter period "
                "or another algorithm"
            )
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "_limit", rate.limit)
        object.__setattr__(self, "_period_us", period_us)
        object.__setattr__(self, "namespace", f"swc:{rate.limit}:{period_us}")

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def max_state_ttl_us(self) -> int:
        # curr keeps weighing, as the next window's prev, until the end of the next window.
        return 2 * self._period_us

    def step(
        self, state: SlidingWindowCounterState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        limit, period = self._limit, self._period_us
        prev = curr = 0
        if state is None:
            start = now_us - now_us % period
        else:
            last, prev, curr = state
            if now_us < last:
                now_us = last
            start = now_us - now_us % period
            # Whole windows since the newest admission's window: its counts shift or lapse.
            gap = start - (last - last % period)
            if gap >= 2 * period:
                prev = curr = 0
            elif gap:
                prev, curr = curr, 0
        elapsed = now_us - start
        left = period - elapsed
        # ceil(prev * (period - e) / period): the previous window's weighted share, in whole
        # units of cost; prev * left <= limit * period < 2**53.
        share = ceil_div(prev * left, period)
        # The estimate reaches 0 at the end of the window after the newest one with a count.
        reset_us = (left + period) if curr else (left if prev else 0)
        if cost > limit:
            return (
                decision_from_us(False, limit, limit - curr - share, reset_us, NEVER),
                state,
                0,
            )
        if curr + cost + share > limit:
            if curr + cost <= limit:
                # Fits later in this window, once prev's share has shrunk enough:
                # prev * e' >= period * (prev + curr + cost - limit).
                fit_at = ceil_div(period * (prev + curr + cost - limit), prev)
                retry_us = fit_at - elapsed
            else:
                # Fits in the next window, where curr is the previous count:
                # curr * e'' >= period * (curr + cost - limit).
                retry_us = left + ceil_div(period * (curr + cost - limit), curr)
            return (
                decision_from_us(False, limit, limit - curr - share, reset_us, retry_us),
                state,
                0,
            )
        curr += cost
        return (
            decision_from_us(True, limit, limit - curr - share, left + period, 0),
            (now_us, prev, curr),
            start + 2 * period,
        )

    def refund(
        self, state: SlidingWindowCounterState | None, now_us: int, amount: int
    ) -> RefundResult:
        """Give back to the current window only: ``curr = max(0, curr - amount)``."""
        if state is None:
            return None, 0
        period = self._period_us
        last, prev, curr = state
        if now_us < last:
            now_us = last
        start = now_us - now_us % period
        gap = start - (last - last % period)
        if gap >= 2 * period:
            return None, 0
        if gap:
            # Nothing admitted in this window: the state is left as it is.
            return state, start + period
        curr = max(0, curr - amount)
        if not curr and not prev:
            return None, 0
        return (last, prev, curr), start + (2 * period if curr else period)
