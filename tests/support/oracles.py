"""Independent statements of each algorithm's promise, checked against a trace of decisions.

These do not reuse the algorithms' code: the token bucket, GCRA and leaky bucket are recomputed
with exact fractions, the sliding log and the sliding window counter from the raw list of
admissions, the fixed window from its definition. The sliding window counter's admissions are
also fed to a sliding log of twice its limit, which measures the exact trailing count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import partial

from algorithms import (
    GCRA,
    FixedWindow,
    LeakyBucket,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from limits_core import Decision, Rate
from limits_core.algorithm import Algorithm
from limits_core.policy import Policy
from tests.support.programs import START_US, Advance, Hit, Op, Peek, Reset

Trace = list[tuple[Op, Decision | None]]


def check_trace(algorithm: Algorithm, program: list[Op], decisions: list[Decision | None]) -> None:
    """Assert every promise of ``algorithm`` on one run of ``program``."""
    trace = list(zip(program, decisions, strict=True))
    check_decision_fields(algorithm, trace)
    if isinstance(algorithm, Policy):
        check_policy(algorithm, trace)
    elif isinstance(algorithm, FixedWindow):
        check_fixed_window(algorithm, trace)
    elif isinstance(algorithm, SlidingLog):
        check_sliding_log(algorithm, trace)
    elif isinstance(algorithm, TokenBucket):
        check_token_bucket(algorithm, trace)
    elif isinstance(algorithm, SlidingWindowCounter):
        check_sliding_window_counter(algorithm, trace)
    elif isinstance(algorithm, GCRA):
        check_gcra(algorithm, trace)
    elif isinstance(algorithm, LeakyBucket):
        check_leaky_bucket(algorithm, trace)
    else:  # pragma: no cover - a new algorithm must bring its oracle
        raise AssertionError(f"no oracle for {algorithm!r}")


def check_policy(policy: Policy, trace: Trace) -> None:
    """Each limit keeps its own promise on the requests the policy let through, and the
    policy admits exactly when every limit does."""
    for _, d in trace:
        if d is not None:
            assert len(d.details) == len(policy.algorithms)
            assert d.allowed == all(part.allowed for part in d.details)
            assert d.retry_after == max(part.retry_after for part in d.details)
            assert d.reset_after == max(part.reset_after for part in d.details)
            assert any((p.limit, p.remaining) == (d.limit, d.remaining) for p in d.details)
    # The limiter sends at most policy.limit + 1, so that is the cost each limit sees; and a hit
    # the policy denied consumed nothing: to each limit it was only a look.
    program: list[Op] = []
    for op, d in trace:
        if isinstance(op, Hit | Peek):
            cost = min(op.cost, policy.limit + 1)
            op = (
                Hit(op.key, cost) if isinstance(op, Hit) and d and d.allowed else Peek(op.key, cost)
            )
        program.append(op)
    for i, algorithm in enumerate(policy.algorithms):
        check_trace(algorithm, program, [d.details[i] if d else None for _, d in trace])


def check_decision_fields(algorithm: Algorithm, trace: Trace) -> None:
    for op, d in trace:
        if d is None:
            continue
        assert isinstance(op, Hit | Peek)
        # A policy reports its most restrictive limit, checked in check_policy.
        assert d.limit == algorithm.limit or isinstance(algorithm, Policy)
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
        if not d.allowed and op.cost <= burst:
            # The first microsecond at which the refilled level covers the cost.
            assert _us(d.retry_after) == math.ceil((op.cost - level) / per_us)
        if isinstance(op, Hit) and d.allowed:
            buckets[op.key] = (after, now)
    check_interval_bound(trace, burst, per_us)


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def check_interval_bound(trace: Trace, burst: int, per_us: Fraction) -> None:
    """The cost admitted in any interval ``[a, b]`` is at most ``burst + rate * (b - a)``.

    Checked over every pair of admission times of each key (a reset starts a key afresh).
    """
    admitted: dict[str, list[tuple[int, int]]] = {}
    runs: list[list[tuple[int, int]]] = []
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset) and op.key in admitted:
            runs.append(admitted.pop(op.key))
        if isinstance(op, Hit) and d is not None and d.allowed:
            admitted.setdefault(op.key, []).append((now, op.cost))
    runs.extend(admitted.values())
    for run in runs:
        for i, (a, _) in enumerate(run):
            total = 0
            for b, cost in run[i:]:
                total += cost
                assert total <= burst + per_us * (b - a), (a, b, total)


def _smallest_wait(fits: Callable[[int], bool], most: int) -> int:
    """The smallest ``w`` in ``[1, most]`` with ``fits(w)``, for a monotone ``fits``."""
    assert fits(most)
    lo, hi = 1, most
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _swc_counts(log: list[tuple[int, int]], period: int, t: int) -> tuple[int, int, int]:
    """(prev, curr, elapsed) of the epoch-aligned windows at ``t``, from the admissions."""
    start = t - t % period
    prev = sum(c for u, c in log if start - period <= u < start)
    curr = sum(c for u, c in log if start <= u <= t)
    return prev, curr, t - start


def _swc_estimate(log: list[tuple[int, int]], period: int, t: int) -> Fraction:
    prev, curr, elapsed = _swc_counts(log, period, t)
    return Fraction(prev * (period - elapsed), period) + curr


def _swc_fits(
    log: list[tuple[int, int]], period: int, limit: int, now: int, cost: int, wait: int
) -> bool:
    return _swc_estimate(log, period, now + wait) + cost <= limit


def check_sliding_window_counter(algorithm: SlidingWindowCounter, trace: Trace) -> None:
    limit, period = algorithm.rate.limit, algorithm.rate.period_us
    admitted: dict[str, list[tuple[int, int]]] = {}
    # The exact log of what the counter admitted, with room for twice the limit: it measures
    # the true cost in the trailing period, and admitting everything proves the 2x bound.
    exact = SlidingLog(Rate(2 * limit, algorithm.rate.period))
    logs: dict[str, object] = {}

    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            admitted.pop(op.key, None)
            logs.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        log = admitted.setdefault(op.key, [])
        prev, curr, elapsed = _swc_counts(log, period, now)
        est = _swc_estimate(log, period, now)
        # The documented bound of the estimate against the exact trailing count.
        true = sum(c for t, c in log if now - t < period)
        assert -Fraction(prev * elapsed, period) <= est - true
        assert est - true <= Fraction(prev * (period - elapsed), period)
        expect = op.cost <= limit and est + op.cost <= limit
        assert d.allowed == expect, (now, op, d, est)
        assert d.remaining == math.floor(limit - est - (op.cost if d.allowed else 0))
        start = now - elapsed
        if d.allowed or curr:
            reset = start + 2 * period - now
        else:
            reset = start + period - now if prev else 0
        assert _us(d.reset_after) == reset
        if not d.allowed and op.cost <= limit:
            fits = partial(_swc_fits, log, period, limit, now, op.cost)
            wait = _smallest_wait(fits, 2 * period)
            assert _us(d.retry_after) == wait
        if isinstance(op, Hit) and d.allowed:
            log.append((now, op.cost))
            # Never more than limit in an aligned window.
            assert curr + op.cost <= limit
            # The exact trailing count, from a sliding log fed the same admissions.
            seen, state, _ = exact.step(logs.get(op.key), now, op.cost)
            assert seen.allowed  # so at most 2 * limit in any trailing period
            logs[op.key] = state
            trailing = 2 * limit - seen.remaining
            assert trailing == sum(c for t, c in log if now - t < period)
            assert trailing <= limit + Fraction(prev * elapsed, period)
            assert trailing <= 2 * limit - 1


def check_gcra(algorithm: GCRA, trace: Trace) -> None:
    burst = algorithm.burst
    interval = Fraction(algorithm.rate.period_us, algorithm.rate.limit)  # T, in microseconds
    tolerance = burst * interval
    tats: dict[str, Fraction] = {}
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            tats.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        base = max(tats.get(op.key, Fraction(now)), Fraction(now))
        new_tat = base + op.cost * interval
        # redis-cell: admitted iff the new TAT minus the tolerance is not in the future.
        expect = op.cost <= burst and new_tat - tolerance <= now
        assert d.allowed == expect, (now, op, d, base)
        ttl = (new_tat if d.allowed else base) - now
        assert d.remaining == math.floor((tolerance - ttl) / interval)
        assert _us(d.reset_after) == math.ceil(ttl)
        if not d.allowed and op.cost <= burst:
            assert _us(d.retry_after) == math.ceil(new_tat - tolerance - now)
        if isinstance(op, Hit) and d.allowed:
            tats[op.key] = new_tat
    check_interval_bound(trace, burst, Fraction(algorithm.rate.limit, algorithm.rate.period_us))


def check_leaky_bucket(algorithm: LeakyBucket, trace: Trace) -> None:
    capacity = algorithm.capacity
    per_us = Fraction(algorithm.rate.limit, algorithm.rate.period_us)
    buckets: dict[str, tuple[Fraction, int]] = {}  # key -> (level, time)
    for now, op, d in _timeline(trace):
        if isinstance(op, Reset):
            buckets.pop(op.key, None)
        if not isinstance(op, Hit | Peek) or d is None:
            continue
        level, last = buckets.get(op.key, (Fraction(0), now))
        level = max(Fraction(0), level - (now - last) * per_us)
        # Admitted exactly when the drained level has room for the cost.
        assert d.allowed == (level + op.cost <= capacity), (now, op, d, level)
        after = level + op.cost if d.allowed else level
        assert after <= capacity  # the level never exceeds capacity
        assert d.remaining == math.floor(capacity - after)
        assert _us(d.reset_after) == math.ceil(after / per_us)
        if not d.allowed and op.cost <= capacity:
            assert _us(d.retry_after) == math.ceil((level + op.cost - capacity) / per_us)
        if isinstance(op, Hit) and d.allowed:
            buckets[op.key] = (after, now)
