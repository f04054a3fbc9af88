"""Hostile keys and costs: a typed error or a documented decision, never a driver's exception
and never corrupted state, on every backend."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limits_core import ConfigurationError
from limits_core.algorithm import Algorithm
from limits_core.validation import MAX_KEY_BYTES
from tests.conftest import MakeLimiter
from tests.support.programs import new_clock

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_keys = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="{}:%\\*?[]\"' \t\n\x00\x7f\u200b\ud7ff\U0001f511", max_size=40),
    st.builds(lambda n, c: c * n, st.integers(120, 600), st.sampled_from("a{é🔑")),
)


def _valid(key: str) -> bool:
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    control = any(ord(c) < 32 or 127 <= ord(c) < 160 for c in key)
    return 0 < size <= MAX_KEY_BYTES and not control


@fixture_ok
@given(key=hostile_keys)
def test_any_text_key_is_refused_cleanly_or_limited(
    make_limiter: MakeLimiter, algorithm: Algorithm, key: str
) -> None:
    with make_limiter(algorithm, new_clock()) as limiter:
        if not _valid(key):
            with pytest.raises(ConfigurationError):
                limiter.hit(key)
            return
        first = limiter.hit(key, algorithm.limit)
        assert first.allowed
        assert not limiter.hit(key).allowed
        limiter.reset(key)
        assert limiter.peek(key).remaining == algorithm.limit - 1


def test_a_megabyte_key_is_refused(make_limiter: MakeLimiter, algorithm: Algorithm) -> None:
    with make_limiter(algorithm, new_clock()) as limiter, pytest.raises(ConfigurationError):
        limiter.hit("{" * 1_000_000)


@pytest.mark.parametrize("extra", [0, 1, 2, 10**6, 2**53, 2**64, 2**200])
def test_costs_at_the_edges(make_limiter: MakeLimiter, algorithm: Algorithm, extra: int) -> None:
    with make_limiter(algorithm, new_clock()) as limiter:
        cost = algorithm.limit + extra
        decision = limiter.hit("edge", cost)
        if extra == 0:
            assert decision.allowed
            assert decision.remaining == 0
        else:
            assert not decision.allowed
            assert math.isinf(decision.retry_after)
            assert limiter.peek("edge").remaining == algorithm.limit - 1
