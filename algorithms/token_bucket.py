"""Token bucket: refills continuously at the rate, holds at most ``burst`` tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from algorithms._exact import ceil_div, check_size, scaled_rate
from limits_core.algorithm import NEVER, RefundResult, StepResult
from limits_core.decision import decision_from_us
from limits_core.rate import Rate

__all__ = ["TokenBucket"]

#: (tokens in scaled units, time of that level in microseconds)
TokenBucketState = tuple[int, int]


@dataclass(frozen=True, init=False)
class TokenBucket:
    """A bucket of ``burst`` tokens refilled continuously at ``rate``; a request takes ``cost``.

    ``burst`` defaults to ``rate.limit``. A key with no stored state has a full bucket. A
    request is admitted when the bucket holds at least ``cost`` tokens; a denied request takes
    nothing.

    Tokens are counted exactly, as integers: one token is ``period_us / g`` units and the bucket
    gains ``limit / g`` units per microsecond, where ``g = gcd(limit, period_us)``. A rate and
    burst whose scaled capacity would reach 2**53 is rejected with a ``ConfigurationError``.

    - ``limit``: ``burst``.
    - ``remaining``: whole tokens left after this request.
    - ``reset_after``: time until the bucket is full again.
    - ``retry_after``: time until the bucket holds ``cost`` tokens; ``inf`` if
      ``cost > burst``.
    - Memory per key: two integers (level, time).

    :meth:`refund` puts ``amount`` tokens back, up to ``burst``: a bucket full again is the
    same as no state, and is deleted.
    """

    kind: ClassVar[str] = "token_bucket"
    rate: Rate
    burst: int
    namespace: str = field(init=False, repr=False, compare=False)
    _unit: int = field(init=False, repr=False, compare=False)
    _refill: int = field(init=False, repr=False, compare=False)
    _capacity: int = field(init=False, repr=False, compare=False)
    _fill_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, rate: Rate | str, burst: int | None = None) -> None:
        rate = Rate.coerce(rate)
        if burst is None:
            burst = rate.limit
        burst = check_size(burst, "burst")
        unit, refill = scaled_rate(
            rate, burst, f"TokenBucket({str(rate)!r}, burst={burst})", "burst"
        )
        capacity = burst * unit
        period_us = rate.period_us
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "burst", burst)
        object.__setattr__(self, "_unit", unit)
        object.__setattr__(self, "_refill", refill)
        object.__setattr__(self, "_capacity", capacity)
        object.__setattr__(self, "_fill_us", ceil_div(capacity, refill))
        object.__setattr__(self, "namespace", f"tb:{rate.limit}:{period_us}:{burst}")

    @property
    def limit(self) -> int:
        return self.burst

    @property
    def unit(self) -> int:
        """Scaled units per token."""
        return self._unit

    @property
    def refill_per_us(self) -> int:
        """Scaled units gained per microsecond."""
        return self._refill

    @property
    def max_state_ttl_us(self) -> int:
        return self._fill_us

    def step(
        self, state: TokenBucketState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        # The hot path of every backend's reference: ceil_div and min() are written inline,
        # since a function call costs as much as the arithmetic, and skipped when refill is 1
        # (whenever the limit divides the period in microseconds: most rates).
        capacity, refill = self._capacity, self._refill
        if state is None:
            tokens = capacity
        else:
            tokens, last = state
            elapsed = now_us - last
            if elapsed < 0:
                now_us = last
            elif elapsed >= self._fill_us:
                tokens = capacity
            else:
                tokens += elapsed * refill
                if tokens > capacity:
                    tokens = capacity
        burst, unit = self.burst, self._unit
        need = cost * unit
        if tokens < need:  # always so when cost > burst: need > capacity >= tokens
            if refill == 1:
                reset_us, retry_us = capacity - tokens, need - tokens
            else:
                reset_us, retry_us = -((tokens - capacity) // refill), -((tokens - need) // refill)
            if cost > burst:
                retry_us = NEVER
            left = tokens // unit if tokens >= unit else 0
            return decision_from_us(False, burst, left, reset_us, retry_us), state, 0
        tokens -= need
        reset_us = capacity - tokens if refill == 1 else -((tokens - capacity) // refill)
        return (
            decision_from_us(True, burst, tokens // unit, reset_us, 0),
            (tokens, now_us),
            now_us + reset_us,
        )

    def refund(self, state: TokenBucketState | None, now_us: int, amount: int) -> RefundResult:
        """Put ``amount`` tokens back: ``tokens = min(capacity, tokens_now + amount)``."""
        if state is None:
            return None, 0
        capacity, refill = self._capacity, self._refill
        tokens, last = state
        elapsed = now_us - last
        if elapsed < 0:
            now_us, elapsed = last, 0
        elif elapsed >= self._fill_us:
            return None, 0
        tokens = min(capacity, tokens + elapsed * refill + amount * self._unit)
        if tokens == capacity:
            return None, 0
        return (tokens, now_us), now_us + ceil_div(capacity - tokens, refill)
