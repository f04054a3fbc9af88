"""IETF RateLimit / RateLimit-Policy fields, Retry-After and legacy headers, parsed with the
RFC 9651 parser of the http-sf package."""

from __future__ import annotations

import math

import http_sf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorithms import FixedWindow, SlidingLog, TokenBucket
from limits_core import ConfigurationError, Decision
from limits_core.headers import (
    LimitStatus,
    check_policy_name,
    rate_limit_headers,
    ratelimit_field,
    ratelimit_policy_field,
    retry_after_field,
    seconds_up,
    window_of,
)

ALLOWED = Decision(True, 100, 99, 59.2, 0.0)
DENIED = Decision(False, 100, 0, 16.01, 16.01)


def sf_list(value: str) -> list[tuple[object, dict[str, object]]]:
    parsed = http_sf.parse(value.encode("ascii"), tltype="list")
    assert isinstance(parsed, list)
    return parsed  # type: ignore[return-value]


def test_the_fields_of_the_draft() -> None:
    limits: list[LimitStatus] = [("default", DENIED, 60.0)]
    assert ratelimit_policy_field(limits) == '"default";q=100;w=60'
    assert ratelimit_field(limits) == '"default";r=0;t=17'
    assert sf_list(ratelimit_policy_field(limits)) == [("default", {"q": 100, "w": 60})]
    assert sf_list(ratelimit_field(limits)) == [("default", {"r": 0, "t": 17})]


def test_one_member_per_limit() -> None:
    limits: list[LimitStatus] = [("burst", ALLOWED, 60.0), ("daily", DENIED, 86_400.0)]
    assert sf_list(ratelimit_policy_field(limits)) == [
        ("burst", {"q": 100, "w": 60}),
        ("daily", {"q": 100, "w": 86400}),
    ]
    assert sf_list(ratelimit_field(limits)) == [
        ("burst", {"r": 99, "t": 60}),
        ("daily", {"r": 0, "t": 17}),
    ]


def test_headers_of_a_denied_request() -> None:
    fields = dict(rate_limit_headers([("default", DENIED, 60.0)]))
    assert fields["Retry-After"] == "17"
    assert set(fields) == {"RateLimit-Policy", "RateLimit", "Retry-After"}


def test_headers_of_an_allowed_request_have_no_retry_after() -> None:
    fields = dict(rate_limit_headers([("default", ALLOWED, 60.0)]))
    assert set(fields) == {"RateLimit-Policy", "RateLimit"}


def test_retry_after_is_omitted_when_no_wait_helps() -> None:
    never = Decision(False, 10, 10, 0.0, math.inf)
    fields = dict(rate_limit_headers([("default", never, 1.0)]))
    assert "Retry-After" not in fields
    assert sf_list(fields["RateLimit"]) == [("default", {"r": 10, "t": 0})]


def test_legacy_fields_on_opt_in_describe_the_binding_limit() -> None:
    limits: list[LimitStatus] = [("burst", ALLOWED, 60.0), ("daily", DENIED, 86_400.0)]
    assert "X-RateLimit-Limit" not in dict(rate_limit_headers(limits))
    fields = dict(rate_limit_headers(limits, legacy=True))
    assert (fields["X-RateLimit-Limit"], fields["X-RateLimit-Remaining"]) == ("100", "0")
    assert fields["X-RateLimit-Reset"] == "17"
    few = Decision(True, 10, 2, 3.5, 0.0)
    fields = dict(rate_limit_headers([("a", ALLOWED, 60.0), ("b", few, 10.0)], legacy=True))
    assert (fields["X-RateLimit-Limit"], fields["X-RateLimit-Remaining"]) == ("10", "2")
    assert fields["X-RateLimit-Reset"] == "4"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, 0), (1e-6, 1), (1.0, 1), (1.000001, 2), (16.01, 17), (59.999999, 60), (math.inf,
     999_999_999_999_999), (math.nan, 0), (-1.0, 0)],
)  # fmt: skip
def test_seconds_round_up(seconds: float, expected: int) -> None:
    assert seconds_up(seconds) == expected


def test_retry_after_is_at_least_one_second() -> None:
    assert retry_after_field(0.0) == "1"
    assert retry_after_field(0.2) == "1"
    assert retry_after_field(2.5) == "3"


def test_policy_names_are_escaped_or_rejected() -> None:
    limits: list[LimitStatus] = [('say "hi" \\ there', ALLOWED, 1.0)]
    assert sf_list(ratelimit_field(limits)) == [('say "hi" \\ there', {"r": 99, "t": 60})]
    for bad in ("", "x" * 65, "tab\there", "é", 5):
        with pytest.raises(ConfigurationError):
            check_policy_name(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        ratelimit_field([])


def test_window_of_each_algorithm() -> None:
    assert window_of(FixedWindow("100/minute")) == 60.0
    assert window_of(SlidingLog("5/10s")) == 10.0
    # a bucket of 20 refilled at 10/s is fully restored in 2 s: q=20 per w=2
    assert window_of(TokenBucket("10/second", burst=20)) == 2.0
    assert window_of(TokenBucket("10/second")) == 1.0


decisions = st.builds(
    lambda limit, used, reset, retry, allowed: Decision(
        allowed, limit, max(limit - used, 0), reset, 0.0 if allowed else retry
    ),
    st.integers(1, 10**12),
    st.integers(0, 10**12),
    st.floats(0, 10 * 366 * 86_400.0),
    st.one_of(st.floats(1e-6, 10 * 366 * 86_400.0), st.just(math.inf)),
    st.booleans(),
)
names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64)


@given(
    st.lists(
        st.tuples(names, decisions, st.floats(1e-6, 10 * 366 * 86_400.0)), min_size=1, max_size=5
    ),
    st.booleans(),
)
def test_every_generated_field_is_valid(limits: list[LimitStatus], legacy: bool) -> None:
    fields = dict(rate_limit_headers(limits, legacy=legacy))
    policy = sf_list(fields["RateLimit-Policy"])
    state = sf_list(fields["RateLimit"])
    assert [name for name, _ in policy] == [name for name, _, _ in limits]
    for (_, params), (_, decision, window) in zip(policy, limits, strict=True):
        assert params == {"q": decision.limit, "w": max(math.ceil(window), 1)}
    for (_, params), (_, decision, _) in zip(state, limits, strict=True):
        assert params["r"] == decision.remaining
        assert isinstance(params["t"], int)
        assert params["t"] >= decision.reset_after
    if "Retry-After" in fields:
        retry = int(fields["Retry-After"])
        assert retry >= 1
        assert any(not d.allowed and retry >= d.retry_after for _, d, _ in limits)
    else:
        assert all(d.allowed for _, d, _ in limits) or any(d.never_allowed for _, d, _ in limits)
