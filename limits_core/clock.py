"""Clocks: where a limiter reads the time when it does not use the store's own clock.

A limiter without a ``clock=`` lets a distributed backend use the server's clock (Redis
``TIME``, PostgreSQL ``clock_timestamp()``), so app servers with skewed clocks still agree.
Giving a clock overrides that; its time is sent to the store with each decision. Tests and
simulations use :class:`ManualClock` to drive every backend through the same virtual time.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol, runtime_checkable

from limits_core.errors import ConfigurationError

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time in integer microseconds since the Unix epoch."""

    def now_us(self) -> int:
        """The current time, in integer microseconds since the Unix epoch."""
        ...


class SystemClock:
    """The host's wall clock (``time.time_ns``)."""

    __slots__ = ()

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def __repr__(self) -> str:
        return "SystemClock()"


def _to_us(seconds: float, what: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(f"{what} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds):
        raise ConfigurationError(f"{what} must be finite, got {seconds!r}")
    return round(seconds * 1_000_000)


class ManualClock:
    """A clock that moves only when told to; thread-safe.

    >>> clock = ManualClock(start=1_700_000_000.0)
    >>> clock.advance(1.5)
    >>> clock.now()
    1700000001.5
    """

    __slots__ = ("_lock", "_now_us")

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now_us = _to_us(start, "start")
        if self._now_us < 0:
            raise ConfigurationError(f"start must not be before the epoch, got {start!r}")
        self._lock = threading.Lock()

    def now_us(self) -> int:
        return self._now_us

    def now(self) -> float:
        """The current time in seconds since the epoch."""
        return self._now_us / 1_000_000

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds``; a negative value moves it backwards."""
        step = _to_us(seconds, "seconds")
        with self._lock:
            if self._now_us + step < 0:
                raise ConfigurationError("the clock cannot move before the epoch")
            self._now_us += step

    def set(self, t: float) -> None:
        """Set the clock to ``t`` seconds since the epoch (backwards is allowed)."""
        value = _to_us(t, "t")
        if value < 0:
            raise ConfigurationError(f"t must not be before the epoch, got {t!r}")
        with self._lock:
            self._now_us = value

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now()!r})"
