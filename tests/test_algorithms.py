"""Worked examples of each algorithm's documented semantics, on the pure model."""

from __future__ import annotations

import math

from algorithms import FixedWindow, SlidingLog, TokenBucket

T = 1_700_000_000_000_000
S = 1_000_000


def test_fixed_window_boundary_and_fields() -> None:
    fw = FixedWindow("2/10s")
    d, s, exp = fw.step(None, T, 1)
    assert (d.allowed, d.remaining, d.reset_after, exp) == (True, 1, 10.0, T + 10 * S)
    d, s, _ = fw.step(s, T + 3 * S, 1)
    assert (d.remaining, d.reset_after) == (0, 7.0)
    d, _, _ = fw.step(s, T + 10 * S - 1, 1)
    assert not d.allowed
    assert d.retry_after == 1e-6
    d, _, _ = fw.step(s, T + 10 * S, 1)  # exactly one period after the start: a new window
    assert d.allowed
    assert d.remaining == 1


def test_fixed_window_denied_first_hit_opens_no_window() -> None:
    d, s, _ = FixedWindow("2/10s").step(None, T, 3)
    assert not d.allowed
    assert math.isinf(d.retry_after)
    assert s is None
    assert d.reset_after == 0.0


def test_sliding_log_boundary_and_retry() -> None:
    sl = SlidingLog("3/10s")
    _, s, _ = sl.step(None, T, 2)
    _, s, _ = sl.step(s, T + 4 * S, 1)
    d, _, _ = sl.step(s, T + 5 * S, 2)
    # Two units must leave: both were admitted at T, so at T + 10 s.
    assert not d.allowed
    assert d.retry_after == 5.0
    assert d.reset_after == 9.0
    d, _, _ = sl.step(s, T + 10 * S, 2)  # exactly one period old: no longer counted
    assert d.allowed
    assert d.remaining == 0


def test_sliding_log_states_are_values() -> None:
    """Stepping one state twice gives two independent successors."""
    sl = SlidingLog("3/10s")
    _, s0, _ = sl.step(None, T, 1)
    _, a, _ = sl.step(s0, T + 1, 1)
    _, b, _ = sl.step(s0, T + 2, 2)
    assert sl.step(a, T + 3, 1, False)[0].remaining == 0
    assert not sl.step(b, T + 3, 1, False)[0].allowed
    assert sl.step(s0, T + 3, 2, False)[0].allowed


def test_sliding_log_compacts_its_front() -> None:
    sl = SlidingLog("10/s")
    _, s, _ = sl.step(None, T, 1)
    for i in range(1, 10_000):
        d, s, _ = sl.step(s, T + i * 100_000, 1)
        assert d.allowed
    times, _, lo, hi = s
    assert hi - lo == 10
    assert len(times) <= 2 * 10 + 32


def test_token_bucket_refills_continuously() -> None:
    tb = TokenBucket("10/s", burst=5)
    d, s, exp = tb.step(None, T, 5)
    assert (d.allowed, d.remaining, d.reset_after, exp) == (True, 0, 0.5, T + S // 2)
    d, _, _ = tb.step(s, T + 99_999, 1)
    assert not d.allowed
    assert d.retry_after == 1e-6
    d, s, _ = tb.step(s, T + 250_000, 2)
    assert (d.allowed, d.remaining) == (True, 0)
    assert d.reset_after == 0.45


def test_token_bucket_with_awkward_rates_stays_exact() -> None:
    tb = TokenBucket("7/3s", burst=3)
    d, s, _ = tb.step(None, T, 3)
    assert d.reset_after == 1.285715  # ceil(9 s / 7) in whole microseconds
    denied, _, _ = tb.step(s, T, 1)
    wait = round(denied.retry_after * S)
    assert not tb.step(s, T + wait - 1, 1)[0].allowed
    assert tb.step(s, T + wait, 1)[0].allowed


def test_namespaces_differ_by_parameters() -> None:
    spaces = {
        FixedWindow("1/s").namespace,
        FixedWindow("2/s").namespace,
        FixedWindow("1/2s").namespace,
        SlidingLog("1/s").namespace,
        TokenBucket("1/s").namespace,
        TokenBucket("1/s", burst=2).namespace,
    }
    assert len(spaces) == 6
