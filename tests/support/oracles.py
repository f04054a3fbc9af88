"""Independent statements of each algorithm's promise, checked against a trace of decisions.

These do not reuse the algorithms' code: the token bucket is recomputed with exact fractions,
the sliding log from the raw list of admissions, the fixed window from its definition.
"""

from __future__ import annotations

import math
from fractions import Fraction

from algorithms import FixedWindow, SlidingLog, TokenBucket
from limits_core import Decision
from limits_core.algorithm import Algorithm
from tests.support.programs import START_US, Advance, Hit, Op, Peek, Reset

Trace = list[tuple[Op, Decision | None]]


def check_trace(algorithm: Algorithm, program: list[Op], decisions: list[Decision | None]) -> None:
    """Assert every promise of ``algorithm`` on one run of ``program``."""
    trace = list(zip(program, decisions, strict=True))
    check_decision_fields(algorithm, trace)
    if isinstance(algorithm, FixedWindow):
        check_fixed_window(algorithm, trace)
    elif isinstance(algorithm, SlidingLog):
        check_sliding_log(algorithm, trace)
    elif isinstance(algorithm, TokenBucket):
        check_token_bucket(algorithm, trace)
    else:  # pragma: no cover - a new algorithm must bring its oracle
        raise AssertionError(f"no oracle for {algorithm!r}")


def check_decision_fields(algorithm: Algorithm, trace: Trace) -> None:
    for op, d in trace:
        if d is None:
            continue
        assert isinstance(op, Hit | Peek)
        assert d.limit == algorithm.limit
        assert 0 <= d.remaining <= d.limit
        assert d.reset_after >= 0
        if d.allowed:
            assert d.retry_after == 0.0
        elif op.cost > algorithm.limit:
            assert math.isinf(d.retry_after)
        else:
            assert 0 < d.retry_after <= d.reset_after


def _timeline(trace: Trace) -> list[tuple[int, Op, Decision | None]]:
    now, out = START_US, []
    for op, d in trace:
        if isinstance(op, Advance):
            now += op.us
        out.append((now, op, d))
    return out


def check_fixed_window(algorithm: FixedWindow, trace: Trace) -> None:
    limit, period = algorithm.rate.limit, algorithm.rate.period_us
    windows: dict[str, tuple[int, int]] = {}  # key -> (start, admitted cost)
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            windows.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        start, used = windows.get(op.key, (now, 0))
        if now >= start + period:
            start, used = now, 0
        expect = op.cost <= limit - used
        assert d.allowed == expect, (now, op, d, start, used)
        if d.allowed:
            assert round(d.reset_after * 1_000_000) == start + period - now
        if isinstance(op, Hit) and d.allowed:
            windows[op.key] = (start, used + op.cost)
            assert used + op.cost <= limit  # never more than limit within a window


def check_sliding_log(algorithm: SlidingLog, trace: Trace) -> None:
    limit, period = algorithm.rate.limit, algorithm.rate.period_us
    admitted: dict[str, list[tuple[int, int]]] = {}
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            admitted.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        log = admitted.setdefault(op.key, [])
        used = sum(c for t, c in log if now - t < period)
        # Admitted exactly when the request fits in the trailing period.
        assert d.allowed == (used + op.cost <= limit), (now, op, d, used)
        assert d.remaining == limit - used - (op.cost if d.allowed else 0)
        if isinstance(op, Hit) and d.allowed:
            log.append((now, op.cost))
            # Never more than limit in any trailing period.
            assert sum(c for t, c in log if now - t < period) <= limit


def check_token_bucket(algorithm: TokenBucket, trace: Trace) -> None:
    burst = algorithm.burst
    per_us = Fraction(algorithm.rate.limit, algorithm.rate.period_us)
    buckets: dict[str, tuple[Fraction, int]] = {}  # key -> (level, time)
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            buckets.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        level, last = buckets.get(op.key, (Fraction(burst), now))
        level = min(Fraction(burst), level + (now - last) * per_us)
        # Admitted exactly when the continuously refilled level, capped at burst, covers it.
        assert d.allowed == (level >= op.cost), (now, op, d, level)
        after = level - op.cost if d.allowed else level
        assert d.remaining == math.floor(after)
        assert round(d.reset_after * 1_000_000) == math.ceil((burst - after) / per_us)
        if isinstance(op, Hit) and d.allowed:
            buckets[op.key] = (after, now)
