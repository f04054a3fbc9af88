"""The sliding window counter's documented semantics and error bound, on the pure model."""

from __future__ import annotations

import math

import pytest

from algorithms import SlidingLog, SlidingWindowCounter
from limits_core import ConfigurationError

T = 1_700_000_000_000_000  # a multiple of 10 s: the start of an aligned window
S = 1_000_000


def test_weighted_previous_window_and_fields() -> None:
    swc = SlidingWindowCounter("5/10s")
    assert swc.namespace == "swc:5:10000000"
    state = None
    for i in range(5):
        d, state, expires = swc.step(state, T + 9 * S, 1)
        assert (d.allowed, d.remaining, d.reset_after) == (True, 4 - i, 11.0)
        assert expires == T + 20 * S  # curr weighs until the end of the next window
    # At the boundary the previous window still weighs fully: nothing is freed.
    d, _, _ = swc.step(state, T + 10 * S, 1)
    assert (d.allowed, d.remaining, d.reset_after) == (False, 0, 10.0)
    # prev * (10 - e) / 10 + 1 <= 5 once e >= 2 s.
    assert d.retry_after == 2.0
    assert not swc.step(state, T + 12 * S - 1, 1)[0].allowed
    d, _, _ = swc.step(state, T + 12 * S, 1)
    assert (d.allowed, d.remaining) == (True, 0)
    # Two windows later the state is as no state.
    d, _, _ = swc.step(state, T + 20 * S, 5)
    assert (d.allowed, d.remaining, d.reset_after) == (True, 0, 20.0)


def test_retry_across_the_next_boundary() -> None:
    swc = SlidingWindowCounter("5/10s")
    _, s, _ = swc.step(None, T, 5)
    d, _, _ = swc.step(s, T + S, 1)
    # Not in this window (curr is full); in the next one once 5 * (10 - e) / 10 + 1 <= 5.
    assert (d.allowed, d.retry_after, d.reset_after) == (False, 11.0, 19.0)
    assert not swc.step(s, T + 12 * S - 1, 1)[0].allowed
    assert swc.step(s, T + 12 * S, 1)[0].allowed
    # A full-limit request waits for the window after next, where nothing weighs.
    d, _, _ = swc.step(s, T + S, 5)
    assert d.retry_after == 19.0
    assert not swc.step(s, T + 20 * S - 1, 5)[0].allowed


def test_the_two_times_bound_is_nearly_reached() -> None:
    """The worst case of the documented bound: 2 * limit - 1 in one trailing period."""
    swc, log = SlidingWindowCounter("5/10s"), SlidingLog("5/10s")
    s, ls = None, None
    for _ in range(5):  # all of the previous window's cost in its last microsecond
        _, s, _ = swc.step(s, T + 10 * S - 1, 1)
        _, ls, _ = log.step(ls, T + 10 * S - 1, 1)
    late = T + 20 * S - 2  # 2 us before the end: prev's share is ceil(5 * 2 / 10**7) = 1
    admitted = 0
    while (d := swc.step(s, late, 1))[0].allowed:
        s = d[1]
        admitted += 1
    assert admitted == 4
    # (late - 10 s, late] holds all 9: the exact log would have admitted none of the 4.
    assert not log.step(ls, late, 1)[0].allowed


def test_windows_are_aligned_to_the_epoch() -> None:
    swc = SlidingWindowCounter("2/10s")
    _, s, _ = swc.step(None, T + 10 * S - 1, 2)  # the last microsecond of a window
    d, _, _ = swc.step(s, T + 10 * S, 1)  # the next window: prev = 2, full weight
    assert not d.allowed
    assert d.retry_after == 5.0  # 2 * (10 - e) / 10 + 1 <= 2 at e = 5 s


def test_earlier_clock_counts_from_the_newest_admission() -> None:
    swc = SlidingWindowCounter("5/10s")
    s = None
    for _ in range(5):
        _, s, _ = swc.step(s, T + 9 * S, 1)
    _, s, _ = swc.step(s, T + 19 * S, 1)  # prev 5 weighs 0.5, curr 1
    d = swc.step(s, T + 11 * S, 1)[0]  # back in time: treated as T + 19 s
    assert (d.allowed, d.remaining) == (True, 2)


def test_never_and_bounds() -> None:
    swc = SlidingWindowCounter("5/10s")
    d, s, _ = swc.step(None, T, 6)
    assert (d.allowed, d.remaining, d.reset_after, s) == (False, 5, 0.0, None)
    assert math.isinf(d.retry_after)
    assert SlidingWindowCounter("104249/day").limit == 104_249
    with pytest.raises(ConfigurationError, match="cannot be counted exactly"):
        SlidingWindowCounter("104250/day")
