"""Traffic patterns and the virtual-time runner."""

from __future__ import annotations

import itertools
import random

import pytest

from algorithms import ALGORITHMS, FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import ConfigurationError, Rate
from limits_core.simulation import (
    MAX_ARRIVALS,
    PATTERNS,
    Boundary,
    Burst,
    Poisson,
    Steady,
    simulate,
)

RATE = Rate.parse("100/10s")
PERIOD = RATE.period_us


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_is_sorted_and_inside_the_run(name: str) -> None:
    times = PATTERNS[name]().arrivals(RATE, 40, random.Random(1))
    assert times, name
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < 40_000_000
    assert PATTERNS[name]().name == name


def test_steady_sends_ninety_percent_evenly() -> None:
    times = Steady().arrivals(RATE, 40, random.Random(0))
    assert len(times) == 360  # 9 per second for 40 seconds
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert max(gaps) - min(gaps) <= 1
    for build in ALGORITHMS.values():  # under the rate: nobody denies anything
        run = simulate(build(RATE), times, seconds=40)
        assert sum(run.admitted) == 360
        assert not any(run.denied)


def test_burst_packs_twice_the_limit_every_three_periods() -> None:
    times = Burst().arrivals(RATE, 40, random.Random(0))
    assert len(times) == 2 * 100 * 2  # bursts start at 0 s and 30 s
    assert all(t % (3 * PERIOD) < PERIOD // 10 for t in times)
    fw = simulate(FixedWindow(RATE), times, seconds=40)
    assert fw.admitted[0] == 100
    assert fw.admitted[30] == 100
    assert sum(fw.admitted) == 200


def test_boundary_lets_a_fixed_window_pass_twice_the_limit() -> None:
    times = Boundary().arrivals(RATE, 40, random.Random(0))
    fixed = simulate(FixedWindow(RATE), times, seconds=40)
    exact = simulate(SlidingLog(RATE), times, seconds=40)
    assert fixed.max_admitted_within(PERIOD) == 2 * RATE.limit - 1
    assert exact.max_admitted_within(PERIOD) == RATE.limit
    # Within one twentieth of a period either side of the boundary:
    assert fixed.max_admitted_within(PERIOD // 10) >= 2 * RATE.limit - 1


def test_poisson_is_reproducible_by_seed_and_near_its_load() -> None:
    a = Poisson().arrivals(RATE, 200, random.Random(7))
    assert a == Poisson().arrivals(RATE, 200, random.Random(7))
    assert a != Poisson().arrivals(RATE, 200, random.Random(8))
    assert 0.8 * 1800 < len(a) < 1.2 * 1800  # 9 per second on average


def test_patterns_refuse_huge_runs() -> None:
    huge = Rate.parse("1000000/second")
    for pattern in (Steady(), Burst(), Boundary(), Poisson()):
        with pytest.raises(ConfigurationError, match="at most"):
            pattern.arrivals(huge, 3600, random.Random(0))
    assert MAX_ARRIVALS >= 1_000_000


def test_simulate_bins_and_counts() -> None:
    run = simulate(TokenBucket("2/second"), [0, 1, 2, 3, 1_500_000], seconds=2, bin_seconds=1)
    assert run.sent == (4, 1)
    assert run.admitted == (2, 1)
    assert run.denied == (2, 0)
    assert run.admitted_at == (0, 1, 1_500_000)


@pytest.mark.parametrize(
    "arrivals", [[5, 3], [-1], [2_000_000]], ids=["unsorted", "negative", "outside"]
)
def test_simulate_rejects_bad_arrivals(arrivals: list[int]) -> None:
    with pytest.raises(ConfigurationError):
        simulate(FixedWindow(RATE), arrivals, seconds=2)


def test_simulate_rejects_bad_durations() -> None:
    with pytest.raises(ConfigurationError):
        simulate(FixedWindow(RATE), [], seconds=0)
    with pytest.raises(ConfigurationError):
        simulate(FixedWindow(RATE), [], seconds=1, bin_seconds=2)


def test_simulate_on_a_given_backend_matches_the_default() -> None:
    times = Poisson().arrivals(RATE, 30, random.Random(3))
    for build in ALGORITHMS.values():
        mine = simulate(build(RATE), times, seconds=30, backend=MemoryBackend())
        assert mine == simulate(build(RATE), times, seconds=30)


def test_max_admitted_within() -> None:
    run = simulate(FixedWindow("10/second"), [0, 10, 20, 999_999, 1_000_000], seconds=2)
    assert run.max_admitted_within(1_000_000) == 4
    assert run.max_admitted_within(11) == 2
    assert run.max_admitted_within(1) == 1
