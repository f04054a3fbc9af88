"""Dense traffic against every algorithm's model: many hits, steps of a few emission intervals,
landings on window boundaries. The generic programs spend most of their time far apart, where
few requests are denied; these keep each key near its limit, where the promises are tight.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from algorithms import GCRA, LeakyBucket, TokenBucket
from limits_core import Rate
from limits_core.algorithm import Algorithm
from tests.conftest import ALGORITHMS
from tests.support.oracles import check_trace
from tests.support.programs import START_US, Advance, Hit, Model, Op, Peek, Reset, run_model


def _period_us(algorithm: Algorithm) -> int:
    rate: Rate = algorithm.rate  # type: ignore[attr-defined]
    return rate.period_us


@st.composite
def dense_programs(draw: st.DrawFn, algorithm: Algorithm, max_ops: int = 80) -> list[Op]:
    """Mostly hits on two keys, with clock steps around the emission interval and boundaries."""
    period = _period_us(algorithm)
    rate: Rate = algorithm.rate  # type: ignore[attr-defined]
    interval = max(1, period // rate.limit)
    keys = st.sampled_from(("a", "a", "b"))
    small_cost = st.integers(1, 2)
    any_cost = st.integers(1, algorithm.limit + 1)
    now = START_US
    program: list[Op] = []
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from("hhhhhhppaaaaw" + "r" * draw(st.sampled_from((0, 0, 1)))))
        if kind == "h":
            cost = draw(st.one_of(small_cost, small_cost, any_cost))
            program.append(Hit(draw(keys), cost))
        elif kind == "p":
            program.append(Peek(draw(keys), draw(any_cost)))
        elif kind == "r":
            program.append(Reset(draw(keys)))
        else:
            if kind == "w":
                # Land just before, on or just after the next epoch-aligned window boundary,
                # or the one after it.
                boundary = now - now % period + draw(st.sampled_from((period, 2 * period)))
                step = boundary + draw(st.sampled_from((-1, 0, 1))) - now
            else:
                step = draw(
                    st.one_of(
                        st.integers(0, 3),
                        st.integers(0, 2 * interval),
                        st.sampled_from((interval - 1, interval, interval + 1)),
                        st.integers(0, period),
                    )
                )
            step = max(0, step)
            now += step
            program.append(Advance(step))
    return program


@st.composite
def cases(draw: st.DrawFn) -> tuple[Algorithm, list[Op]]:
    algorithm = ALGORITHMS[draw(st.sampled_from(sorted(ALGORITHMS)))]()
    return algorithm, draw(dense_programs(algorithm))


@given(case=cases())
def test_model_keeps_its_promises_under_dense_traffic(case: tuple[Algorithm, list[Op]]) -> None:
    algorithm, program = case
    check_trace(algorithm, program, run_model(algorithm, program))


@given(case=cases())
def test_every_retry_after_is_exact(case: tuple[Algorithm, list[Op]]) -> None:
    """At every finite denial: waiting ``retry_after`` admits, a microsecond less does not."""
    algorithm, program = case
    model = Model(algorithm)
    for op in program:
        decision = model.apply(op)
        if not isinstance(op, Hit) or decision is None or decision.allowed:
            continue
        if decision.never_allowed:
            assert op.cost > algorithm.limit
            continue
        wait = round(decision.retry_after * 1_000_000)
        state = model.states.get(op.key)
        assert not algorithm.step(state, model.now_us + wait - 1, op.cost, False)[0].allowed
        assert algorithm.step(state, model.now_us + wait, op.cost, False)[0].allowed


@given(case=cases())
def test_denied_and_expired_states(case: tuple[Algorithm, list[Op]]) -> None:
    """A denied step returns the state it was given; past its expiry a state is as no state."""
    algorithm, program = case
    model = Model(algorithm)
    for op in program:
        if isinstance(op, Hit) and op.key in model.states:
            state = model.states[op.key]
            cost = min(op.cost, algorithm.limit + 1)
            decision, after, expires = algorithm.step(state, model.now_us, cost)
            if not decision.allowed:
                assert after is state
            else:
                for later in (expires, expires + 1, expires + 3 * _period_us(algorithm)):
                    for c in (1, algorithm.limit):
                        assert (
                            algorithm.step(after, later, c, False)[0]
                            == (algorithm.step(None, later, c, False)[0])
                        )
                # One microsecond before expiry, the state still matters.
                assert (
                    algorithm.step(after, expires - 1, 1, False)[0]
                    != (algorithm.step(None, expires - 1, 1, False)[0])
                )
        model.apply(op)


@given(
    limit=st.integers(1, 9),
    period_us=st.integers(1, 30_000_000),
    extra=st.integers(0, 4),
    data=st.data(),
)
def test_gcra_and_leaky_bucket_decide_as_the_token_bucket(
    limit: int, period_us: int, extra: int, data: st.DataObject
) -> None:
    """The documented equivalence: same rate and burst, the same decisions field by field."""
    rate = Rate(limit, period_us / 1_000_000)
    burst = max(1, limit + extra - 2)
    bucket = TokenBucket(rate, burst=burst)
    program = data.draw(dense_programs(bucket))
    expected = run_model(bucket, program)
    assert run_model(GCRA(rate, burst=burst), program) == expected
    assert run_model(LeakyBucket(rate, capacity=burst), program) == expected


@given(case=cases(), backs=st.lists(st.integers(1, 40_000_000), min_size=1, max_size=4))
def test_clock_going_backwards_keeps_replies_in_bounds(
    case: tuple[Algorithm, list[Op]], backs: list[int]
) -> None:
    """Earlier than a key's newest time: nothing more is granted, and every field stays sane."""
    algorithm, program = case
    model = Model(algorithm)
    for op in program:
        model.apply(op)
    limit, now = algorithm.limit, model.now_us
    for state in model.states.values():
        for cost in (1, limit):
            present = algorithm.step(state, now, cost, False)[0]
            for back in backs:
                past = algorithm.step(state, now - back, cost, False)[0]
                assert past.allowed <= present.allowed
                assert past.remaining >= 0
                # Capacity before the request: what remains plus what the request took.
                assert past.remaining + cost * past.allowed <= (
                    present.remaining + cost * present.allowed
                )
                assert past.reset_after * 1_000_000 <= algorithm.max_state_ttl_us
                if not past.allowed:
                    assert 0 < past.retry_after <= past.reset_after
