"""GCRA: one theoretical arrival time per key, with redis-cell's reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from algorithms._exact import ceil_div, check_size, scaled_rate
from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["GCRA"]

#: The theoretical arrival time, ``tat_us + frac / scale`` microseconds with
#: ``0 <= frac < scale``: whole microseconds plus a remainder in scaled units.
GCRAState = tuple[int, int]


@dataclass(frozen=True, init=False)
class GCRA:
    """The generic cell rate algorithm, with the semantics and reply of redis-cell.

    Requests are meant to arrive one emission interval ``T = period / limit`` apart; a key
    stores one theoretical arrival time (TAT), when it would be fully rested. ``burst``
    (default ``rate.limit``) is how many back-to-back requests a rested key admits; the delay
    variation tolerance is ``burst * T``. A request of ``cost`` at ``now`` computes
    ``new_tat = max(tat, now) + cost * T`` and is admitted iff ``new_tat - burst * T <= now``,
    that is iff ``max(tat, now) - now + cost * T <= burst * T``; an admitted request stores
    ``new_tat``, a denied one changes nothing. This is redis-cell's ``CL.THROTTLE key
    (burst - 1) limit period cost``: its ``max_burst`` counts the requests *beyond* the first,
    so its tolerance is ``(max_burst + 1) * T``. Equivalently, in the textbook's terms, the
    burst tolerance is ``tau = (burst - 1) * T`` and a unit request is conforming iff
    ``tat - tau <= now``.

    Let ``ttl = max(tat, now) - now`` after the request (before it, when denied), the time
    until the key is fully rested. The reply is redis-cell's, in exact microseconds rather than
    truncated seconds:

    - ``limit``: ``burst``.
    - ``remaining``: ``floor((burst * T - ttl) / T)``, the unit requests that would still pass
      now.
    - ``reset_after``: ``ttl``, rounded up to a whole microsecond.
    - ``retry_after``: ``new_tat - burst * T - now`` rounded up, the exact wait after which the
      request passes; ``inf`` if ``cost > burst`` (redis-cell's ``-1``).
    - Memory per key: the TAT as two integers (whole microseconds and a remainder).

    Exactly, as integers: time is counted in units of ``1 / s`` microseconds with
    ``s = limit / g`` and ``g = gcd(limit, period_us)``, so ``T = period_us / g`` units. A
    rate and burst whose tolerance ``burst * T + s`` would reach 2**53 is rejected with a
    ``ConfigurationError``; every intermediate of :meth:`step` stays below that bound.

    GCRA admits exactly what :class:`~algorithms.TokenBucket` with the same rate and burst
    admits (the TAT is the time the bucket would be full again); the two differ in what they
    store (one time instead of a level and a time) and in redis-cell compatibility. Per key,
    time never runs backwards: a ``now`` earlier than ``tat - burst * T``, which only a clock
    that went back can produce, is treated as that time, so the reply stays within its bounds.

    :meth:`refund` moves the TAT back by ``amount`` emission intervals, never before ``now``:
    a fully rested key is the same as no state, and is deleted.
    """

    kind: ClassVar[str] = "gcra"
    rate: Rate
    burst: int
    namespace: str = field(init=False, repr=False, compare=False)
    _scale: int = field(init=False, repr=False, compare=False)
    _interval: int = field(init=False, repr=False, compare=False)
    _tolerance: int = field(init=False, repr=False, compare=False)
    _tolerance_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str, burst: int | None = None) -> None:
        rate = Rate.coerce(rate)
        if burst is None:
            burst = rate.limit
        burst = check_size(burst, "burst")
        interval, scale = scaled_rate(rate, burst, f"GCRA({str(rate)!r}, burst={burst})", "burst")
        tolerance = burst * interval
        period_us = rate.period_us
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "_scale", scale)
        object.__setattr__(self, "_interval", interval)
        object.__setattr__(self, "_tolerance", tolerance)
        object.__setattr__(self, "_tolerance_us", ceil_div(tolerance, scale))
        object.__setattr__(self, "namespace", f"gcra:{rate.limit}:{period_us}:{burst}")

    @property
    def limit(self) -> int:
        return self.burst

    @property
    def scale(self) -> int:
        """Scaled time units per microsecond."""
        return self._scale

    @property
    def emission_interval(self) -> int:
        """The emission interval ``T`` in scaled units."""
        return self._interval

    @property
    def max_state_ttl_us(self) -> int:
        return self._tolerance_us

    def step(
        self, state: GCRAState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        # The hot path of every backend's reference: ceil_div and min() are written inline,
        # since a function call costs as much as the arithmetic, and skipped when scale is 1
        # (whenever the limit divides the period in microseconds: most rates).
        scale, interval, tolerance = self._scale, self._interval, self._tolerance
        # ttl: max(tat, now) - now in scaled units, at most the tolerance.
        ttl = 0
        if state is not None:
            tat_us, frac = state
            ahead = tat_us - now_us
            if ahead > tolerance // scale:
                # Only a clock that went back gets here: treat now as tat - tolerance.
                ttl = tolerance
            elif ahead >= 0:
                ttl = ahead * scale + frac
                if ttl > tolerance:
                    ttl = tolerance
        burst = self.burst
        need = cost * interval
        slack = tolerance - ttl
        if need > slack:  # always so when cost > burst: need > tolerance >= slack
            if scale == 1:
                reset_us, retry_us = ttl, need - slack
            else:
                reset_us, retry_us = -(-ttl // scale), -((slack - need) // scale)
            if cost > burst:
                retry_us = NEVER
            left = slack // interval if slack >= interval else 0
            return decision_from_us(False, burst, left, reset_us, retry_us), state, 0
        ttl += need
        reset_us = ttl if scale == 1 else -(-ttl // scale)
        return (
            decision_from_us(True, burst, (tolerance - ttl) // interval, reset_us, 0),
            (now_us + ttl // scale, ttl % scale),
            now_us + reset_us,
        )

    def refund(self, state: GCRAState | None, now_us: int, amount: int) -> RefundResult:
        """Move the TAT back: ``tat = max(now, tat - amount * T)``, exactly, in scaled units.

        A TAT beyond the tolerance (a clock that went back) moves back from where it is, so
        the refund gives back ``amount`` and no more; and never more than ``burst``.
        """
        if state is None:
            return None, 0
        scale = self._scale
        tat_us, frac = state
        tat = tat_us * scale + frac - min(amount, self.burst) * self._interval
        if tat <= now_us * scale:
            return None, 0
        return (tat // scale, tat % scale), ceil_div(tat, scale)
