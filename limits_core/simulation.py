"""Traffic patterns and a virtual-time runner: how each algorithm shapes the same traffic.

A :class:`Pattern` turns a rate into request arrival times; :func:`simulate` sends them at one
key through a :class:`~limits_core.Limiter` driven by a :class:`~limits_core.ManualClock`, so a
minute of traffic runs in milliseconds and every run is reproducible::

    import random

    from algorithms import FixedWindow
    from limits_core.rate import Rate
    from limits_core.simulation import Boundary, simulate

    rate = Rate.parse("100/10s")
    arrivals = Boundary().arrivals(rate, seconds=40, rng=random.Random(0))
    result = simulate(FixedWindow(rate), arrivals, seconds=40)
    result.admitted                           # admitted per one-second bin
    result.max_admitted_within(rate.period_us)  # 199: twice the limit inside one period

``limits-core simulate`` prints and plots these; accuracy benchmarks reuse the same patterns.
Times are integer microseconds from the start of the run.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from limits_core.algorithm import Algorithm
from limits_core.backend import Backend
from limits_core.clock import ManualClock
from limits_core.errors import ConfigurationError
from limits_core.limiter import Limiter
from limits_core.rate import Rate

__all__ = [
    "MAX_ARRIVALS",
    "PATTERNS",
    "Boundary",
    "Burst",
    "Pattern",
    "Poisson",
    "Simulation",
    "Steady",
    "simulate",
]

#: The most requests one pattern may generate (a guard against "1000000/second" for an hour).
MAX_ARRIVALS = 2_000_000
#: Virtual time at which every simulation starts (2023-11-14), in seconds.
START = 1_700_000_000.0


class Pattern(Protocol):
    """A traffic pattern: request times for a given rate and duration."""

    #: The pattern's name on the command line.
    name: ClassVar[str]

    def arrivals(self, rate: Rate, seconds: float, rng: random.Random) -> list[int]:
        """Sorted request times, in µs from the start, all within ``[0, seconds)``.

        ``rng`` is the only source of randomness, so a seeded one makes the run reproducible.
        """
        ...


def _span_us(seconds: float) -> int:
    if not 0 < seconds <= 7 * 86_400:
        raise ConfigurationError(f"seconds must be in (0, 604800], got {seconds!r}")
    return round(seconds * 1_000_000)


def _even(start: int, end: int, count: int) -> list[int]:
    """``count`` times spread evenly over ``[start, end)``."""
    return [start + (end - start) * i // count for i in range(count)]


def _check_count(count: float) -> None:
    if count > MAX_ARRIVALS:
        raise ConfigurationError(
            f"the pattern would send about {count:,.0f} requests; at most {MAX_ARRIVALS:,} "
            "(use a smaller rate or fewer seconds)"
        )


def _estimate(rate: Rate, seconds: float, load: float) -> None:
    """Refuse, before generating anything, a run that would send too many requests."""
    _check_count(rate.limit * load * seconds / rate.period)


@dataclass(frozen=True)
class Steady:
    """Evenly spaced requests at ``load`` times the rate (90% by default): every algorithm
    should admit them all."""

    name: ClassVar[str] = "steady"
    load: float = 0.9

    def arrivals(self, rate: Rate, seconds: float, rng: random.Random) -> list[int]:
        end = _span_us(seconds)
        _estimate(rate, seconds, self.load)
        count = int(rate.limit * self.load * seconds / rate.period)
        return _even(0, end, count)


@dataclass(frozen=True)
class Burst:
    """Silence, then ``size`` times the limit packed into ``spread`` of a period, every
    ``every`` periods: shows how much of a burst each algorithm lets through, and how soon."""

    name: ClassVar[str] = "burst"
    size: float = 2.0
    every: float = 3.0
    spread: float = 0.1

    def arrivals(self, rate: Rate, seconds: float, rng: random.Random) -> list[int]:
        end, period = _span_us(seconds), rate.period_us
        _estimate(rate, seconds, self.size / self.every)
        count = max(1, round(self.size * rate.limit))
        step, width = max(1, round(self.every * period)), max(1, round(self.spread * period))
        times: list[int] = []
        for start in range(0, end, step):
            times.extend(t for t in _even(start, start + width, count) if t < end)
        return times


@dataclass(frozen=True)
class Boundary:
    """The attack on fixed windows, every two periods: one request opens a window, then
    ``limit`` requests arrive in the last ``lead`` of that window and ``limit`` more in the
    first ``lead`` of the next one. A fixed window admits about twice the limit within a
    fraction of a period; a sliding log never more than the limit in any period."""

    name: ClassVar[str] = "boundary"
    lead: float = 0.05

    def arrivals(self, rate: Rate, seconds: float, rng: random.Random) -> list[int]:
        end, period = _span_us(seconds), rate.period_us
        _estimate(rate, seconds, 1.0)
        lead = max(1, round(self.lead * period))
        times: list[int] = []
        for start in range(0, end, 2 * period):
            edge = start + period
            cycle = [start, *_even(edge - lead, edge, rate.limit)]
            cycle += _even(edge, edge + lead, rate.limit)
            times.extend(t for t in cycle if t < end)
        return times


@dataclass(frozen=True)
class Poisson:
    """Independent arrivals (exponential gaps) averaging ``load`` times the rate: random
    clumps push past the limit now and then, as real traffic does."""

    name: ClassVar[str] = "poisson"
    load: float = 0.9

    def arrivals(self, rate: Rate, seconds: float, rng: random.Random) -> list[int]:
        end = _span_us(seconds)
        _estimate(rate, seconds, 2 * self.load)
        per_us = rate.limit * self.load / rate.period_us
        times: list[int] = []
        t = rng.expovariate(per_us)
        while t < end:
            times.append(int(t))
            t += rng.expovariate(per_us)
            if len(times) > MAX_ARRIVALS:
                _check_count(len(times))
        return times


#: Every pattern by name, as a constructor with default parameters.
PATTERNS: dict[str, Callable[[], Pattern]] = {
    "steady": Steady,
    "burst": Burst,
    "boundary": Boundary,
    "poisson": Poisson,
}


@dataclass(frozen=True)
class Simulation:
    """What one algorithm did with one run of traffic, binned by ``bin_us``."""

    algorithm: Algorithm
    bin_us: int
    sent: tuple[int, ...]
    admitted: tuple[int, ...]
    #: When each admitted request arrived, in µs from the start.
    admitted_at: tuple[int, ...]

    @property
    def denied(self) -> tuple[int, ...]:
        return tuple(s - a for s, a in zip(self.sent, self.admitted, strict=True))

    def max_admitted_within(self, window_us: int) -> int:
        """The most requests admitted within any ``window_us`` (times ``t`` with
        ``first <= t < first + window_us``)."""
        times, best = self.admitted_at, 0
        for i, first in enumerate(times):
            best = max(best, bisect.bisect_left(times, first + window_us, i) - i)
        return best


def simulate(
    algorithm: Algorithm,
    arrivals: Sequence[int],
    *,
    seconds: float,
    bin_seconds: float = 1.0,
    backend: Backend | None = None,
    key: str = "simulated",
) -> Simulation:
    """Send one request (cost 1) at ``key`` at each of ``arrivals`` (µs from the start, sorted)
    in virtual time; the in-memory backend by default, or any ``backend`` (a Redis or
    PostgreSQL backend then uses the virtual time sent with each request)."""
    span, bin_us = _span_us(seconds), _span_us(bin_seconds)
    if bin_us > span:
        raise ConfigurationError(f"bin_seconds ({bin_seconds}) exceeds seconds ({seconds})")
    if backend is None:
        from backends.memory import MemoryBackend

        backend = MemoryBackend()
    clock = ManualClock(start=START)
    limiter = Limiter(algorithm, backend, clock=clock)
    bins = -(-span // bin_us)
    sent, admitted, admitted_at = [0] * bins, [0] * bins, []
    now = 0
    for t in arrivals:
        if not 0 <= t < span or t < now:
            raise ConfigurationError(f"arrival {t} is out of order or outside [0, {span})")
        clock.advance((t - now) / 1_000_000)
        now = t
        sent[t // bin_us] += 1
        if limiter.hit(key).allowed:
            admitted[t // bin_us] += 1
            admitted_at.append(t)
    return Simulation(algorithm, bin_us, tuple(sent), tuple(admitted), tuple(admitted_at))
