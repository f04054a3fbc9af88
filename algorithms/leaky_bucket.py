"""Leaky bucket as a meter: a level that drains at the rate and must not overflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from algorithms._exact import ceil_div, check_size, scaled_rate
from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["LeakyBucket"]

#: (level in scaled units, time of that level in microseconds)
LeakyBucketState = tuple[int, int]


@dataclass(frozen=True, init=False)
class LeakyBucket:
    """A bucket of ``capacity`` that leaks continuously at ``rate``; a request pours ``cost``.

    ``capacity`` defaults to ``rate.limit``. A key with no stored state has an empty bucket.
    The level drains at ``rate.limit / rate.period`` per second down to zero; a request of
    ``cost`` is admitted when ``level + cost <= capacity`` and then raises the level by
    ``cost``, so the level never exceeds ``capacity``. A denied request pours nothing.

    The level is counted exactly, as integers: one unit of cost is ``period_us / g`` scaled
    units and the bucket drains ``limit / g`` units per microsecond, where
    ``g = gcd(limit, period_us)``. A rate and capacity whose scaled capacity would reach 2**53
    is rejected with a ``ConfigurationError``; every intermediate of :meth:`step` stays below
    that bound.

    - ``limit``: ``capacity``.
    - ``remaining``: ``floor(capacity - level)`` after this request.
    - ``reset_after``: time until the bucket has drained empty.
    - ``retry_after``: time until ``level + cost <= capacity``; ``inf`` if
      ``cost > capacity``.
    - Memory per key: two integers (level, time).

    This is the leaky bucket *as a meter*, the mirror image of :class:`~algorithms.TokenBucket`:
    the level here is ``capacity`` minus the tokens there, so with ``burst = capacity`` it
    admits exactly the same requests, and its reply is the same. The two differ only when the
    leaky bucket is used *as a queue* (a shaper that delays requests and lets them out at the
    rate), which a rate limiter answering allow/deny does not do: this class queues nothing.
    Choose it when "a bucket that fills with work and drains at the rate" is the picture your
    users have. Per key, time never runs backwards: a ``now`` before the stored time is
    treated as the stored time.

    :meth:`refund` drains ``amount`` at once, down to empty: an empty bucket is the same as no
    state, and is deleted.
    """

    kind: ClassVar[str] = "leaky_bucket"
    rate: Rate
    capacity: int
    namespace: str = field(init=False, repr=False, compare=False)
    _unit: int = field(init=False, repr=False, compare=False)
    _drain: int = field(init=False, repr=False, compare=False)
    _full: int = field(init=False, repr=False, compare=False)
    _empty_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str, capacity: int | None = None) -> None:
        rate = Rate.coerce(rate)
        if capacity is None:
            capacity = rate.limit
        capacity = check_size(capacity, "capacity")
        described = f"LeakyBucket({str(rate)!r}, capacity={capacity})"
        unit, drain = scaled_rate(rate, capacity, described, "capacity")
        full = capacity * unit
        period_us = rate.period_us
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "_unit", unit)
        object.__setattr__(self, "_drain", drain)
        object.__setattr__(self, "_full", full)
        object.__setattr__(self, "_empty_us", ceil_div(full, drain))
        object.__setattr__(self, "namespace", f"lb:{rate.limit}:{period_us}:{capacity}")

    @property
    def limit(self) -> int:
        return self.capacity

    @property
    def unit(self) -> int:
        """Scaled units per unit of cost."""
        return self._unit

    @property
    def drain_per_us(self) -> int:
        """Scaled units drained per microsecond."""
        return self._drain

    @property
    def max_state_ttl_us(self) -> int:
        return self._empty_us

    def step(
        self, state: LeakyBucketState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        # The hot path of every backend's reference: ceil_div and max() are written inline,
        # since a function call costs as much as the arithmetic, and skipped when drain is 1
        # (whenever the limit divides the period in microseconds: most rates).
        full, unit, drain = self._full, self._unit, self._drain
        level = 0
        if state is not None:
            level, last = state
            elapsed = now_us - last
            if elapsed < 0:
                now_us = last
            elif elapsed >= self._empty_us:
                level = 0
            else:
                # elapsed * drain < full + drain: below 2**53.
                level -= elapsed * drain
                if level < 0:
                    level = 0
        capacity = self.capacity
        room = full - level
        need = cost * unit
        if need > room:  # always so when cost > capacity: need > full >= room
            if drain == 1:
                reset_us, retry_us = level, need - room
            else:
                reset_us, retry_us = -(-level // drain), -((room - need) // drain)
            if cost > capacity:
                retry_us = NEVER
            left = room // unit if room >= unit else 0
            return decision_from_us(False, capacity, left, reset_us, retry_us), state, 0
        level += need
        reset_us = level if drain == 1 else -(-level // drain)
        return (
            decision_from_us(True, capacity, (full - level) // unit, reset_us, 0),
            (level, now_us),
            now_us + reset_us,
        )

    def refund(self, state: LeakyBucketState | None, now_us: int, amount: int) -> RefundResult:
        """Drain ``amount`` at once: ``level = max(0, level_now - amount)``."""
        if state is None:
            return None, 0
        level, last = state
        elapsed = now_us - last
        if elapsed < 0:
            now_us, elapsed = last, 0
        elif elapsed >= self._empty_us:
            return None, 0
        level -= elapsed * self._drain + amount * self._unit
        if level <= 0:
            return None, 0
        return (level, now_us), now_us + ceil_div(level, self._drain)
