"""Each algorithm keeps its promises, on the pure model and on every backend."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import GCRA, LeakyBucket, TokenBucket
from limits_core.algorithm import Algorithm
from tests.conftest import ALGORITHMS, MakeLimiter
from tests.support.oracles import check_trace
from tests.support.programs import (
    KEYS,
    Hit,
    Op,
    Peek,
    new_clock,
    programs,
    run_model,
    run_sync,
)

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def cases(draw: st.DrawFn) -> tuple[Algorithm, list[Op]]:
    algorithm = ALGORITHMS[draw(st.sampled_from(sorted(ALGORITHMS)))]()
    return algorithm, draw(programs(algorithm, max_ops=60, keys=KEYS[:2]))


@given(case=cases())
def test_model_keeps_its_promises(case: tuple[Algorithm, list[Op]]) -> None:
    algorithm, program = case
    check_trace(algorithm, program, run_model(algorithm, program))


#: The matrix's algorithms at rates taking the other branch of their arithmetic: a refill,
#: scale or drain of 1 unit per microsecond is a subtraction where others divide.
OTHER_RATES: dict[str, Callable[[], Algorithm]] = {
    "token_bucket": lambda: TokenBucket("7/3s", burst=3),
    "gcra": lambda: GCRA("10/s", burst=4),
    "leaky_bucket": lambda: LeakyBucket("4/2s", capacity=3),
}


@pytest.mark.parametrize("kind", sorted(OTHER_RATES))
@given(data=st.data())
def test_model_keeps_its_promises_at_other_rates(kind: str, data: st.DataObject) -> None:
    algorithm = OTHER_RATES[kind]()
    program = data.draw(programs(algorithm, max_ops=60, keys=KEYS[:2]))
    check_trace(algorithm, program, run_model(algorithm, program))


def test_other_rates_take_the_other_branch() -> None:
    matrix = {name: ALGORITHMS[name]() for name in OTHER_RATES}
    other = {name: OTHER_RATES[name]() for name in OTHER_RATES}
    assert [matrix["token_bucket"].refill_per_us, other["token_bucket"].refill_per_us] == [1, 7]  # type: ignore[attr-defined]
    assert [matrix["gcra"].scale, other["gcra"].scale] == [7, 1]  # type: ignore[attr-defined]
    assert [matrix["leaky_bucket"].drain_per_us, other["leaky_bucket"].drain_per_us] == [3, 1]  # type: ignore[attr-defined]


@fixture_ok
@given(case=cases())
def test_backend_keeps_its_promises(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        check_trace(algorithm, program, run_sync(limiter, clock, program))


@fixture_ok
@given(case=cases(), cost=st.integers(1, 8))
def test_retry_after_is_exact(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]], cost: int
) -> None:
    """Waiting ``retry_after`` admits the same request; a microsecond less does not."""
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        run_sync(limiter, clock, program)
        denied = limiter.hit("a", cost)
        if denied.allowed or math.isinf(denied.retry_after):
            assert denied.allowed or cost > algorithm.limit
            return
        wait_us = round(denied.retry_after * 1_000_000)
        clock.advance((wait_us - 1) / 1_000_000)
        assert not limiter.peek("a", cost).allowed
        clock.advance(1 / 1_000_000)
        assert limiter.hit("a", cost).allowed


@fixture_ok
@given(case=cases(), cost=st.integers(1, 8))
def test_denied_request_changes_nothing(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]], cost: int
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        run_sync(limiter, clock, program)
        before = [limiter.peek("a", c) for c in range(1, algorithm.limit + 2)]
        decision = limiter.hit("a", cost)
        if not decision.allowed:
            assert decision == before[min(cost, algorithm.limit + 1) - 1]
            assert [limiter.peek("a", c) for c in range(1, algorithm.limit + 2)] == before


@fixture_ok
@given(case=cases(), back=st.integers(1, 30_000_000), cost=st.integers(1, 8))
def test_clock_going_backwards_grants_nothing(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]], back: int, cost: int
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        run_sync(limiter, clock, program)
        now = limiter.peek("a", cost)
        clock.advance(-back / 1_000_000)
        earlier = limiter.hit("a", cost)
        assert earlier.allowed <= now.allowed
        # Capacity before this request: what remains plus what the request took.
        assert earlier.remaining + cost * earlier.allowed <= now.remaining + cost * now.allowed


@pytest.mark.parametrize("cost", [1, 2, 3])
def test_peek_consumes_nothing(make_limiter: MakeLimiter, algorithm: Algorithm, cost: int) -> None:
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        peeks = [limiter.peek("p", cost) for _ in range(20)]
        assert all(p == peeks[0] for p in peeks)
        assert limiter.hit("p", cost).remaining == algorithm.limit - cost


def test_programs_reach_denials() -> None:
    """The generated programs do exercise denials (guards against a vacuous property)."""
    algorithm = ALGORITHMS["fixed_window"]()
    program: list[Op] = [Hit("a", 2)] * 4 + [Peek("a", 1)]
    decisions = run_model(algorithm, program)
    assert [d.allowed for d in decisions if d] == [True, True, False, False, True]
