"""GCRA's documented semantics on the pure model, including redis-cell's own test table."""

from __future__ import annotations

import math

import pytest

from algorithms import GCRA, TokenBucket
from limits_core import ConfigurationError, Rate

T = 1_700_000_000_000_000
S = 1_000_000


def test_redis_cell_table() -> None:
    """The cases of redis-cell's ``it_rate_limits`` (max_burst 4 = burst 5, 1 per second).

    redis-cell reports -1 for "no retry"; here an allowed request has ``retry_after == 0``
    and a request that can never pass has ``inf``. Its zero-volume peek is left out: a peek
    here reports the request it is given as if it were admitted.
    """
    gcra = GCRA("1/second", burst=5)
    cases = [
        # (offset in ms, cost, allowed, remaining, reset_after, retry_after)
        (0, 6, False, 5, 0.0, math.inf),
        (0, 1, True, 4, 1.0, 0.0),
        (0, 1, True, 3, 2.0, 0.0),
        (0, 1, True, 2, 3.0, 0.0),
        (0, 1, True, 1, 4.0, 0.0),
        (0, 1, True, 0, 5.0, 0.0),
        (0, 1, False, 0, 5.0, 1.0),
        (3000, 1, True, 2, 3.0, 0.0),
        (3100, 1, True, 1, 3.9, 0.0),
        (4000, 1, True, 1, 4.0, 0.0),
        (8000, 1, True, 4, 1.0, 0.0),
        (9500, 1, True, 4, 1.0, 0.0),
        (9500, 2, True, 2, 3.0, 0.0),
        (9500, 5, False, 2, 3.0, 3.0),
    ]
    state = None
    for offset_ms, cost, allowed, remaining, reset_after, retry_after in cases:
        d, new_state, expires = gcra.step(state, T + offset_ms * 1000, cost)
        got = (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after)
        assert got == (allowed, 5, remaining, reset_after, retry_after), offset_ms
        if d.allowed:
            state = new_state
            assert expires == T + offset_ms * 1000 + round(reset_after * S)


def test_burst_defaults_to_the_limit_and_sets_decision_limit() -> None:
    gcra = GCRA("150/hour")
    assert gcra.burst == gcra.limit == 150
    assert gcra.namespace == "gcra:150:3600000000:150"
    state = None
    for i in range(150):
        d, state, _ = gcra.step(state, T, 1)
        assert d.allowed, i
    assert not gcra.step(state, T, 1)[0].allowed


def test_fractional_emission_interval_is_exact() -> None:
    gcra = GCRA("7/10s", burst=2)  # T = 10/7 s, not a whole number of microseconds
    d, s, _ = gcra.step(None, T, 2)
    assert d.reset_after == 2.857143  # ceil(20 s / 7)
    assert s == (T + 2_857_142, 6)  # the TAT: 2,857,142 + 6/7 microseconds after T
    denied = gcra.step(s, T, 1)[0]
    wait = round(denied.retry_after * S)
    assert wait == 1_428_572  # ceil(10 s / 7)
    assert not gcra.step(s, T + wait - 1, 1)[0].allowed
    assert gcra.step(s, T + wait, 1)[0].allowed
    # Seven emission intervals after T the whole burst is back, with no drift.
    assert gcra.step(s, T + 10 * S, 2)[0].remaining == 0
    assert gcra.step(s, T + 10 * S, 2)[0].reset_after == 2.857143


def test_an_earlier_clock_is_bounded_by_the_tolerance() -> None:
    gcra = GCRA("1/second", burst=3)
    _, s, _ = gcra.step(None, T, 3)
    d = gcra.step(s, T - 3600 * S, 1)[0]
    assert (d.allowed, d.remaining, d.reset_after, d.retry_after) == (False, 0, 3.0, 1.0)


def test_same_decisions_as_the_token_bucket() -> None:
    gcra, bucket = GCRA("3/2s", burst=4), TokenBucket("3/2s", burst=4)
    g = b = None
    for offset, cost in [(0, 2), (1, 2), (10, 1), (700_000, 3), (2_000_000, 4), (2_000_001, 1)]:
        dg, ng, eg = gcra.step(g, T + offset, cost)
        db, nb, eb = bucket.step(b, T + offset, cost)
        assert dg == db
        if dg.allowed:
            assert eg == eb
            g, b = ng, nb


def test_rejects_what_cannot_be_counted_exactly() -> None:
    with pytest.raises(ConfigurationError, match="cannot be counted exactly"):
        GCRA(Rate(999_999_999_989, 365 * 86_400.0))
    with pytest.raises(ConfigurationError, match="burst"):
        GCRA("1/s", burst=0)
    with pytest.raises(ConfigurationError, match="burst"):
        GCRA("1/s", burst=True)  # type: ignore[arg-type]
    assert GCRA(Rate(10**12, 86_400.0)).max_state_ttl_us == 86_400 * S
