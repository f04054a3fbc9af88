"""The timed runner behind ``limits-core bench``: decisions per second and latency percentiles.

A :class:`Contender` is anything that decides one request for a key: a limits-core limiter or
a peer library. :func:`measure` times it for a duration on a :class:`Workload`, from one thread
(``tasks=0``) or from asyncio tasks, and returns a :class:`Measurement`.

How it times, so that the numbers mean the same for every contender:

- sync: calls run in chunks; throughput is counted on chunks where nothing else is timed, and
  after each chunk a few calls are timed one by one (``perf_counter_ns``) for the latency
  percentiles, which therefore include ~0.1 µs of timer overhead;
- async: ``tasks`` tasks call in a loop; throughput is every call over the wall time, and one
  call in eight is timed for the percentiles (so they include waiting for the event loop);
- before timing, a short warm-up loads scripts and opens connections; on the deny path every
  key first gets its limit spent, so that every timed call is denied; then a full garbage
  collection, so that no contender pays for another's garbage;
- the sampled calls' outcomes are checked against the path: a deny-path run that admits, or
  an allow-path run that denies, is reported in ``unexpected``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from limits_core.errors import ConfigurationError
from limits_core.rate import Rate

__all__ = [
    "ALLOW_RATE",
    "DENY_RATE",
    "Contender",
    "Measurement",
    "Workload",
    "combine",
    "measure",
    "measure_async",
]

#: The default limits of the two paths: one a run cannot reach, one every key has spent.
ALLOW_RATE = "1000000/second"
DENY_RATE = "1/hour"

Path = Literal["allow", "deny"]


@dataclass(frozen=True)
class Workload:
    """Which keys are hit, and whether requests are admitted (``allow``) or denied."""

    keys: int
    path: Path
    rate: Rate
    #: Keys are ``f"{key_prefix}{i}"``: unique per run, so stores shared by runs never mix.
    key_prefix: str = "bench:"

    def __post_init__(self) -> None:
        if not 1 <= self.keys <= 10_000_000:
            raise ConfigurationError(f"keys must be between 1 and 10000000, got {self.keys}")
        if self.path not in ("allow", "deny"):
            raise ConfigurationError(f"path must be 'allow' or 'deny', got {self.path!r}")

    def key_names(self) -> list[str]:
        return [f"{self.key_prefix}{i}" for i in range(self.keys)]


@dataclass
class Contender:
    """One thing to time. Give ``hit`` (sync) or ``ahit`` (asyncio), or both."""

    name: str
    hit: Callable[[str], Any] | None = None
    ahit: Callable[[str], Awaitable[Any]] | None = None
    #: Reads a call's result: was the request admitted?
    allowed: Callable[[Any], bool] = bool
    close: Callable[[], Any] | None = None
    aclose: Callable[[], Awaitable[Any]] | None = None
    #: Our algorithm kind this contender is compared with (a peer), or its own kind (ours).
    kind: str | None = None
    ours: bool = False


@dataclass(frozen=True)
class Measurement:
    """The numbers of one timed run."""

    name: str
    kind: str | None
    ours: bool
    mode: str  # "sync" or "async xN"
    decisions: int
    seconds: float
    per_second: float
    p50_us: float
    p99_us: float
    samples: int
    #: Sampled calls whose outcome contradicted the path (admitted on deny, denied on allow).
    unexpected: int
    #: Decisions per second of each round, when this combines several (see :func:`combine`).
    rounds: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "algorithm": self.kind,
            "ours": self.ours,
            "mode": self.mode,
            "decisions": self.decisions,
            "seconds": round(self.seconds, 6),
            "decisions_per_second": round(self.per_second, 1),
            "p50_us": round(self.p50_us, 3),
            "p99_us": round(self.p99_us, 3),
            "samples": self.samples,
            "unexpected": self.unexpected,
            "rounds": [round(r, 1) for r in self.rounds or (self.per_second,)],
        }


def combine(rounds: Sequence[Measurement]) -> Measurement:
    """One measurement from alternating rounds of the same contender: the median round's
    rates and percentiles (robust to a round slowed by a busy machine), summed counts."""
    if not rounds:
        raise ValueError("no rounds to combine")
    first, median = rounds[0], statistics.median
    return Measurement(
        first.name,
        first.kind,
        first.ours,
        first.mode,
        sum(m.decisions for m in rounds),
        sum(m.seconds for m in rounds),
        median(m.per_second for m in rounds),
        median(m.p50_us for m in rounds),
        median(m.p99_us for m in rounds),
        sum(m.samples for m in rounds),
        sum(m.unexpected for m in rounds),
        tuple(m.per_second for m in rounds),
    )


Progress = Callable[[float], None]
_SAMPLE = 32  # calls timed one by one after each sync chunk
_MAX_CHUNK = 1 << 16


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    if len(samples_ns) < 2:
        value = samples_ns[0] / 1000 if samples_ns else 0.0
        return value, value
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return cuts[49] / 1000, cuts[98] / 1000


def _prime(hit: Callable[[str], Any], allowed: Callable[[Any], bool], workload: Workload) -> None:
    """Deny path: spend every key's limit; allow path: a short warm-up."""
    if workload.path == "allow":
        for key in itertools.islice(itertools.cycle(workload.key_names()), 200):
            hit(key)
        return
    for key in workload.key_names():
        for _ in range(workload.rate.limit + 1):
            if not allowed(hit(key)):
                break


async def _aprime(
    ahit: Callable[[str], Awaitable[Any]], allowed: Callable[[Any], bool], workload: Workload
) -> None:
    if workload.path == "allow":
        for key in itertools.islice(itertools.cycle(workload.key_names()), 200):
            await ahit(key)
        return

    async def spend(key: str) -> None:
        for _ in range(workload.rate.limit + 1):
            if not allowed(await ahit(key)):
                return

    keys = workload.key_names()
    for start in range(0, len(keys), 100):
        await asyncio.gather(*(spend(k) for k in keys[start : start + 100]))


def measure(
    contender: Contender, workload: Workload, duration: float, progress: Progress | None = None
) -> Measurement:
    """Time ``contender.hit`` from this thread for ``duration`` seconds."""
    hit, allowed = contender.hit, contender.allowed
    if hit is None:
        raise ConfigurationError(f"{contender.name} has no synchronous interface")
    _prime(hit, allowed, workload)
    gc.collect()  # a previous contender's garbage must not be collected on this one's clock
    expect = workload.path == "allow"
    keys: Iterator[str] = itertools.cycle(workload.key_names())
    islice, clock, clock_ns = itertools.islice, time.perf_counter, time.perf_counter_ns
    samples: list[int] = []
    untimed_ns = untimed = unexpected = 0
    chunk = 16
    start = clock()
    deadline = start + duration
    while True:
        t0 = clock_ns()
        for key in islice(keys, chunk):
            hit(key)
        spent = clock_ns() - t0
        untimed_ns += spent
        untimed += chunk
        for key in islice(keys, _SAMPLE):
            a = clock_ns()
            result = hit(key)
            samples.append(clock_ns() - a)
            unexpected += allowed(result) is not expect
        if spent < 20_000_000 and chunk < _MAX_CHUNK:
            chunk *= 2  # fewer, longer chunks once the call's cost is known
        now = clock()
        if progress is not None:
            progress(min(1.0, (now - start) / duration))
        if now >= deadline:
            break
    p50, p99 = _percentiles(samples)
    return Measurement(
        contender.name,
        contender.kind,
        contender.ours,
        "sync",
        untimed + len(samples),
        now - start,
        untimed / (untimed_ns / 1e9),
        p50,
        p99,
        len(samples),
        unexpected,
    )


async def measure_async(
    contender: Contender,
    workload: Workload,
    duration: float,
    tasks: int,
    progress: Progress | None = None,
) -> Measurement:
    """Time ``contender.ahit`` from ``tasks`` concurrent asyncio tasks for ``duration``."""
    ahit, allowed = contender.ahit, contender.allowed
    if ahit is None:
        raise ConfigurationError(f"{contender.name} has no asyncio interface")
    if tasks < 1:
        raise ConfigurationError(f"tasks must be at least 1, got {tasks}")
    await _aprime(ahit, allowed, workload)
    gc.collect()
    expect = workload.path == "allow"
    keys: Iterator[str] = itertools.cycle(workload.key_names())
    clock, clock_ns = time.perf_counter, time.perf_counter_ns
    samples: list[int] = []
    counts = [0, 0]  # calls, unexpected outcomes
    start = clock()
    deadline = start + duration

    shown = [start]  # when progress was last reported

    async def worker() -> None:
        calls = 0
        while (now := clock()) < deadline:
            if progress is not None and now - shown[0] > 0.05:
                shown[0] = now
                progress((now - start) / duration)
            for i in range(64):
                key = next(keys)
                if i & 7:
                    await ahit(key)
                    continue
                a = clock_ns()
                result = await ahit(key)
                samples.append(clock_ns() - a)
                counts[1] += allowed(result) is not expect
            calls += 64
        counts[0] += calls

    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = clock() - start
    if progress is not None:
        progress(1.0)
    p50, p99 = _percentiles(samples)
    return Measurement(
        contender.name,
        contender.kind,
        contender.ours,
        f"async x{tasks}",
        counts[0],
        elapsed,
        counts[0] / elapsed,
        p50,
        p99,
        len(samples),
        counts[1],
    )
