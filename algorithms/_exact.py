"""Exact integer arithmetic shared by the algorithms that meter continuously.

Every scaled quantity stays below 2**53, so the Lua (doubles) and PostgreSQL (bigint) ports
compute the very same integers as the Python models.
"""

from __future__ import annotations

from math import gcd

from limits_core.errors import ConfigurationError
from limits_core.rate import MAX_LIMIT, Rate

__all__ = ["EXACT", "ceil_div", "check_size", "scaled_rate"]

#: The first integer a double cannot hold exactly next to its neighbours.
EXACT = 2**53


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers, without floating point."""
    return -(-a // b)


def check_size(value: object, what: str) -> int:
    """Return ``value`` if it is an int from 1 to MAX_LIMIT (a burst, a capacity)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ConfigurationError(f"{what} must be an int between 1 and {MAX_LIMIT}, got {value!r}")
    return value


def scaled_rate(rate: Rate, size: int, described: str, size_name: str) -> tuple[int, int]:
    """``(unit, per_us)``: one item of cost is ``unit`` scaled units and the rate moves
    ``per_us`` units per microsecond, with ``g = gcd(limit, period_us)``, ``unit =
    period_us / g`` and ``per_us = limit / g``; exact integers.

    Raises :class:`ConfigurationError` naming ``described`` when ``size`` items could not be
    counted below 2**53.
    """
    period_us = rate.period_us
    g = gcd(rate.limit, period_us)
    unit, per_us = period_us // g, rate.limit // g
    if size * unit + per_us >= EXACT:
        raise ConfigurationError(
            f"{described} cannot be counted exactly: use a rate whose limit divides its period "
            f"in microseconds more evenly, or a smaller {size_name}"
        )
    return unit, per_us
