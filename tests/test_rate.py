from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from limits_core import ConfigurationError, Rate
from limits_core.rate import MAX_LIMIT


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("100/minute", 100, 60.0),
        ("100/min", 100, 60.0),
        ("10/second", 10, 1.0),
        ("10/s", 10, 1.0),
        ("1000/day", 1000, 86_400.0),
        ("5 per 2 hours", 5, 7200.0),
        ("3/5m", 3, 300.0),
        ("  7 / HOUR ", 7, 3600.0),
        ("7 PER 2H", 7, 7200.0),
        ("2/1.5s", 2, 1.5),
        ("1/week", 1, 604_800.0),
    ],
)
def test_parse_accepts(text: str, limit: int, period: float) -> None:
    assert Rate.parse(text) == Rate(limit, period)


@pytest.mark.parametrize(
    "text",
    [
        "0/minute",
        "-1/s",
        "10/fortnight",
        "",
        "abc",
        "10",
        "/s",
        "10/",
        "10//s",
        "1.5/s",
        "10/0s",
        "10 per",
        "per second",
        "1e3/s",
        "10/s/s",
        "\u0661\u0660/s",
        "99999999999999999999/s",
        "10/99999999999999999999999999 days",
        "10/ s x",
        "10/s\x00",
    ],
)
def test_parse_rejects_quoting_the_input(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Rate.parse(text)
    assert repr(text) in str(info.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ConfigurationError):
        Rate.parse(100)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "period"),
    [
        (0, 1.0),
        (-1, 1.0),
        (MAX_LIMIT + 1, 1.0),
        (1, 0.0),
        (1, -1.0),
        (1, float("inf")),
        (1, float("nan")),
        (True, 1.0),
        (1.5, 1.0),
        (1, 1e-9),
        (1, "60"),
    ],
)
def test_constructor_validates(limit: object, period: object) -> None:
    with pytest.raises(ConfigurationError):
        Rate(limit, period)  # type: ignore[arg-type]


def test_rate_is_frozen_and_hashable() -> None:
    rate = Rate(100, 60)
    assert rate.period == 60.0
    assert isinstance(rate.period, float)
    assert rate.period_us == 60_000_000
    assert {rate: 1}[Rate.parse("100/minute")] == 1
    with pytest.raises(AttributeError):
        rate.limit = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(100, 60), "100/minute"),
        (Rate(5, 7200), "5 per 2 hours"),
        (Rate(3, 1.5), "3 per 1.5 seconds"),
    ],
)
def test_str_round_trips(rate: Rate, text: str) -> None:
    assert str(rate) == text
    assert Rate.parse(text) == rate


@given(st.text(max_size=80))
def test_parse_never_crashes(text: str) -> None:
    try:
        rate = Rate.parse(text)
    except ConfigurationError:
        return
    assert 1 <= rate.limit <= MAX_LIMIT
    assert rate.period > 0


@given(
    st.integers(1, MAX_LIMIT), st.sampled_from(["s", "minute", "hours", "d"]), st.integers(1, 90)
)
def test_parse_round_trip(limit: int, unit: str, n: int) -> None:
    rate = Rate.parse(f"{limit} per {n} {unit}")
    assert rate.limit == limit
    assert rate.period == n * Rate.parse(f"1/{unit}").period
