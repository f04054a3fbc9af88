"""MemoryBackend's deciders, its own fused ones (backends/_fused.py) and the generic one that
runs ``step``, against the pure model: every decision, and after every operation the state and
expiry it stores, whether the time comes from the limiter's clock or from the backend's."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms import (
    GCRA,
    Concurrency,
    FixedWindow,
    LeakyBucket,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from backends._fused import fused_decider
from backends.memory import MemoryBackend
from limits_core import Limiter, ManualClock
from limits_core.algorithm import Algorithm
from tests.conftest import ALGORITHMS
from tests.support.programs import START_US, Advance, Hit, Op, Peek, Reset, advances

#: Ten times the profile's examples: each example is cheap, and these deciders are the hot
#: path of every in-memory decision.
MORE = settings(max_examples=settings().max_examples * 10)
#: The suite's algorithms, and each again at a rate that takes its other arithmetic branches
#: (a bucket refilled by more than one unit per microsecond, or by exactly one).
CASES: dict[str, Callable[[], Algorithm]] = {
    **ALGORITHMS,
    "fixed_window 3/7s": lambda: FixedWindow("3/7s"),
    "sliding_log 4/3s": lambda: SlidingLog("4/3s"),
    "token_bucket 7/3s": lambda: TokenBucket("7/3s", burst=5),
    "sliding_window_counter 5/10s": lambda: SlidingWindowCounter("5/10s"),
    "gcra 5/10s": lambda: GCRA("5/10s", burst=3),
    "leaky_bucket 5/10s": lambda: LeakyBucket("5/10s", capacity=3),
}


def _canonical(state: Any) -> Any:
    """A sliding log's live entries, with totals counted from 0 (the buffers it shares with
    earlier states may differ in what lies outside them); any other state as it is."""
    if isinstance(state, tuple) and len(state) == 4 and isinstance(state[0], list):
        times, totals, lo, hi = state
        base = totals[lo - 1] if lo else 0
        return times[lo:hi], [total - base for total in totals[lo:hi]]
    return state


def _programs(algorithm: Algorithm) -> st.SearchStrategy[list[Op]]:
    period_us = algorithm.max_state_ttl_us
    # One unit's share of the state's lifetime (a bucket's time per token, roughly): steps
    # just around its multiples leave remainders of one scaled unit, where rounding shows.
    unit_us = max(1, period_us // algorithm.limit)
    near_units = [k * unit_us + d for k in (1, 2, 3) for d in (-1, 0, 1)]
    key = st.sampled_from(("a", "b", "c"))
    cost = st.one_of(st.just(1), st.integers(1, algorithm.limit + 2))
    op = st.one_of(
        advances(period_us),
        st.builds(Advance, st.sampled_from(near_units)),
        # The clock going backwards, which grants nothing.
        st.builds(Advance, st.integers(-period_us, -1)),
        st.builds(Hit, key, cost),
        st.builds(Hit, key, cost),
        st.builds(Peek, key, cost),
        st.builds(Reset, key),
    )
    return st.lists(op, max_size=60)


def _run(algorithm: Algorithm, program: list[Op], clock_of: str) -> None:
    clock = ManualClock(start=START_US / 1_000_000)
    backend = MemoryBackend(clock=clock) if clock_of == "backend" else MemoryBackend()
    limiter = Limiter(algorithm, backend, clock=clock if clock_of == "limiter" else None)
    model: dict[str, tuple[Any, int]] = {}
    latest = clock.now_us()  # the latest time any decision saw: what the sweep went by
    for index, op in enumerate(program):
        now = clock.now_us()
        latest = max(latest, now)
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
            continue
        if isinstance(op, Reset):
            limiter.reset(op.key)
            model.pop(op.key, None)
            continue
        state = model.get(op.key, (None, 0))[0]
        hit = isinstance(op, Hit)
        expected, new_state, expires_at = algorithm.step(state, now, op.cost, hit)
        got = limiter.hit(op.key, op.cost) if hit else limiter.peek(op.key, op.cost)
        assert got == expected, (index, op)
        if hit and expected.allowed:
            model[op.key] = (new_state, expires_at)
        entries = backend._tables[algorithm.namespace].entries if backend._tables else {}
        for key, (state, expires_at) in list(model.items()):
            entry = entries.get(key)
            if entry is None:
                # Swept, which it may be once expired; from then on the key is a new one, even
                # if the clock goes back to when its state still mattered.
                assert expires_at <= latest, (index, op, key)
                del model[key]
            else:
                assert (_canonical(entry[0]), entry[1]) == (_canonical(state), expires_at), (
                    index,
                    op,
                    key,
                )
        assert set(entries) <= set(model), (index, op)


@pytest.mark.parametrize("clock_of", ["limiter", "backend"])
@pytest.mark.parametrize("name", sorted(CASES))
@MORE
@given(data=st.data())
def test_decisions_states_and_expiries_are_the_models(
    name: str, clock_of: str, data: st.DataObject
) -> None:
    algorithm = CASES[name]()
    _run(algorithm, data.draw(_programs(algorithm)), clock_of)


@pytest.mark.parametrize(
    "algorithm",
    [SlidingLog("10/s"), SlidingLog("3/s"), TokenBucket("10/s", burst=4), FixedWindow("10/s")],
    ids=repr,
)
def test_long_runs_through_compaction_agree_with_the_model(algorithm: Algorithm) -> None:
    """Thousands of requests on one key: the sliding log's front is compacted many times over
    (a fresh copy of its live entries), which short programs never reach."""
    rng = random.Random(20261204)
    program: list[Op] = []
    for _ in range(4000):
        program.append(Advance(rng.choice([0, 1, 1_000, 20_000, 60_000, 150_000])))
        program.append(Hit("k", rng.choice([1, 1, 1, 2, 3])))
        if rng.random() < 0.1:
            program.append(Peek("k", rng.choice([1, 5])))
    _run(algorithm, program, "limiter")


def test_the_built_in_algorithms_get_a_fused_decider_and_subclasses_do_not() -> None:
    class Tweaked(FixedWindow):
        pass

    def get(key: str) -> None:
        return None

    def fused(algorithm: Algorithm) -> bool:
        return fused_decider(algorithm, get, print, (print, print), None) is not None

    assert all(fused(make()) for make in CASES.values())
    assert not fused(Tweaked("5/s"))
    assert not fused(Concurrency(3))
