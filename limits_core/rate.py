"""Rates: how much may pass in how long."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from limits_core.errors import ConfigurationError

__all__ = ["MAX_LIMIT", "MAX_PERIOD", "Rate"]

#: The largest limit accepted: large enough for per-day token budgets, small enough that every
#: counter stays exact in a Lua double and a PostgreSQL bigint.
MAX_LIMIT = 10**12
#: The longest period accepted, in seconds (about ten years).
MAX_PERIOD = 10 * 366 * 86_400.0
#: The shortest period accepted, in seconds: one microsecond, the unit of every stored time.
MIN_PERIOD = 1e-6

_UNITS: dict[str, float] = {}
for _seconds, _names in (
    (1.0, ("s", "sec", "secs", "second", "seconds")),
    (60.0, ("m", "min", "mins", "minute", "minutes")),
    (3600.0, ("h", "hr", "hrs", "hour", "hours")),
    (86_400.0, ("d", "day", "days")),
    (604_800.0, ("w", "wk", "week", "weeks")),
):
    for _name in _names:
        _UNITS[_name] = _seconds

# ASCII digits only: str.isdigit() and \d also accept other scripts' digits.
_RATE_RE = re.compile(
    r"""^\s*
    (?P<limit>[0-9]+)
    \s*(?:/|\bper\b)\s*
    (?P<multiplier>[0-9]+(?:\.[0-9]+)?)?
    \s*(?P<unit>[a-z]+)
    \s*$""",
    re.IGNORECASE | re.VERBOSE | re.ASCII,
)
_MAX_DIGITS = 24


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units of cost per ``period`` seconds.

    >>> Rate.parse("100/minute") == Rate(limit=100, period=60.0)
    True
    >>> Rate.parse("5 per 2 hours")
    Rate(limit=5, period=7200.0)
    """

    limit: int
    period: float

    def __post_init__(self) -> None:
        limit, period = self.limit, self.period
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ConfigurationError(f"limit must be an int, got {limit!r}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ConfigurationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}")
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise ConfigurationError(f"period must be a number of seconds, got {period!r}")
        if not math.isfinite(period) or not MIN_PERIOD <= period <= MAX_PERIOD:
            raise ConfigurationError(
                f"period must be between {MIN_PERIOD} and {MAX_PERIOD} seconds, got {period!r}"
            )
        object.__setattr__(self, "period", float(period))

    @property
    def period_us(self) -> int:
        """The period in integer microseconds."""
        return round(self.period * 1_000_000)

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"100/minute"``, ``"10/s"``, ``"5 per 2 hours"``, ``"3/5m"``, in any case.

        Units: s, sec, second(s); m, min, minute(s); h, hr, hour(s); d, day(s); w, week(s).
        Raises :class:`ConfigurationError` quoting the input for anything else.
        """
        if not isinstance(text, str):
            raise ConfigurationError(f"a rate must be a string such as '100/minute', got {text!r}")
        shown = text if len(text) <= 64 else text[:61] + "..."
        match = _RATE_RE.match(text)
        if match is None:
            raise ConfigurationError(
                f"invalid rate {shown!r}: expected '<limit>/<unit>', '<limit>/<n><unit>' or "
                "'<limit> per <n> <unit>', e.g. '100/minute', '3/5m', '5 per 2 hours'"
            )
        limit_text, multiplier_text, unit = match.group("limit", "multiplier", "unit")
        seconds = _UNITS.get(unit.lower())
        if seconds is None:
            raise ConfigurationError(
                f"invalid rate {shown!r}: unknown unit {unit!r} "
                "(use second, minute, hour, day or week)"
            )
        if len(limit_text) > _MAX_DIGITS or (
            multiplier_text is not None and len(multiplier_text) > _MAX_DIGITS
        ):
            raise ConfigurationError(f"invalid rate {shown!r}: number too large")
        multiplier = 1.0 if multiplier_text is None else float(multiplier_text)
        try:
            return cls(int(limit_text), multiplier * seconds)
        except ConfigurationError as exc:
            raise ConfigurationError(f"invalid rate {shown!r}: {exc}") from None

    @classmethod
    def coerce(cls, value: Rate | str) -> Rate:
        """Accept a :class:`Rate` or a rate string."""
        if isinstance(value, Rate):
            return value
        return cls.parse(value)

    def __str__(self) -> str:
        for seconds, unit in (
            (604_800.0, "week"),
            (86_400.0, "day"),
            (3600.0, "hour"),
            (60.0, "minute"),
            (1.0, "second"),
        ):
            count = self.period / seconds
            if count == 1:
                return f"{self.limit}/{unit}"
            if count.is_integer():
                return f"{self.limit} per {count:.0f} {unit}s"
        return f"{self.limit} per {self.period:g} seconds"
