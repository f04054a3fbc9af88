"""The leaky bucket's documented semantics on the pure model."""

from __future__ import annotations

import math

import pytest

from algorithms import LeakyBucket
from limits_core import ConfigurationError

T = 1_700_000_000_000_000
S = 1_000_000


def test_level_drains_continuously() -> None:
    lb = LeakyBucket("10/s", capacity=5)
    assert lb.namespace == "lb:10:1000000:5"
    d, s, exp = lb.step(None, T, 5)
    assert (d.allowed, d.limit, d.remaining, d.reset_after, exp) == (True, 5, 0, 0.5, T + S // 2)
    d, _, _ = lb.step(s, T + 99_999, 1)  # level 4.00001: one more would overflow
    assert (d.allowed, d.retry_after) == (False, 1e-6)
    d, s, _ = lb.step(s, T + 250_000, 2)  # level 2.5 + 2
    assert (d.allowed, d.remaining, d.reset_after) == (True, 0, 0.45)


def test_capacity_defaults_to_the_limit_and_awkward_rates_stay_exact() -> None:
    lb = LeakyBucket("7/3s")
    assert lb.capacity == lb.limit == 7
    d, s, _ = lb.step(None, T, 7)
    assert d.reset_after == 3.0
    _, s, _ = lb.step(None, T, 3)
    assert lb.step(s, T, 1)[0].reset_after == 1.714286  # ceil(4 * 3 s / 7)
    denied = lb.step(s, T, 5)[0]
    wait = round(denied.retry_after * S)
    assert wait == 428_572  # one unit must drain: ceil(3 s / 7)
    assert not lb.step(s, T + wait - 1, 5)[0].allowed
    assert lb.step(s, T + wait, 5)[0].allowed


def test_never_and_configuration() -> None:
    d, s, _ = LeakyBucket("1/s", capacity=2).step(None, T, 3)
    assert (d.allowed, d.remaining, d.reset_after, s) == (False, 2, 0.0, None)
    assert math.isinf(d.retry_after)
    with pytest.raises(ConfigurationError, match="capacity"):
        LeakyBucket("1/s", capacity=0)
    with pytest.raises(ConfigurationError, match="cannot be counted exactly"):
        LeakyBucket("999999999989/365d")
