"""Token budgets: ``refund(key, amount)`` gives back cost that was admitted but not used.

The models first (never above capacity, never negative, never creating state, bad amounts
refused before anything is touched), then every backend through both facades against the
model, decision by decision, on programs that mix hits, peeks, refunds, resets and time.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.memory import MemoryBackend
from limits_core import (
    AsyncLimiter,
    ConfigurationError,
    Decision,
    Limiter,
    ManualClock,
    Policy,
)
from limits_core.algorithm import Algorithm, Refundable
from tests.conftest import ALGORITHMS, MakeAsyncLimiter, MakeLimiter
from tests.support.programs import (
    KEYS,
    START_US,
    Advance,
    Hit,
    Op,
    Peek,
    Refund,
    new_clock,
    refund_programs,
    run_async,
    run_model,
    run_sync,
)
from tests.test_hostile_input import _valid, hostile_keys

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

POLICY = Policy(FixedWindow("3/10s"), SlidingLog("5/1m"), TokenBucket("1/s", burst=4))


def algorithms_with_policy() -> dict[str, Any]:
    def policy() -> Policy:
        return Policy(*(make() for make in ALGORITHMS.values()), names=list(ALGORITHMS))

    return {**ALGORITHMS, "policy": policy}


# -- the models -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_can_refund(name: str) -> None:
    assert isinstance(ALGORITHMS[name](), Refundable)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_refund_of_no_state_creates_none(name: str) -> None:
    assert ALGORITHMS[name]().refund(None, START_US, 3) == (None, 0)


def _peek(algorithm: Algorithm, state: Any, now_us: int) -> Decision:
    return algorithm.step(state, now_us, 1, False)[0]


def _available(decision: Decision) -> int:
    """The cost that fits now, from a peek of cost 1 (whose remaining excludes the 1 itself
    when allowed)."""
    return decision.remaining + decision.allowed


@pytest.mark.parametrize("name", sorted(algorithms_with_policy()))
@given(data=st.data())
def test_a_refund_never_gives_more_than_was_taken(name: str, data: st.DataObject) -> None:
    """After hits and a refund, what fits never exceeds the limit and never shrinks; for the
    algorithms that count exactly, exactly min(amount, what was used) comes back."""
    algorithm = algorithms_with_policy()[name]()
    limit = algorithm.limit
    now, state = START_US, None
    for cost in data.draw(st.lists(st.integers(1, limit), max_size=6), label="hits"):
        decision, new_state, _ = algorithm.step(state, now, cost)
        if decision.allowed:
            state = new_state
        now += data.draw(st.integers(0, 2 * algorithm.max_state_ttl_us), label="wait")
    before = _peek(algorithm, state, now)
    amount = data.draw(st.integers(1, 3 * limit), label="amount")
    refunded, expires_at = algorithm.refund(state, now, amount)
    after = _peek(algorithm, refunded, now)
    assert _available(before) <= _available(after) <= limit
    assert after.allowed or not before.allowed
    assert after.retry_after <= before.retry_after
    if refunded is not None:
        assert expires_at > now
    if name in ("token_bucket", "gcra", "leaky_bucket", "fixed_window", "sliding_log"):
        assert _available(after) == min(limit, _available(before) + amount)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_hit_then_refund_restores_the_state(name: str) -> None:
    """At one instant, refunding a hit's whole cost gives back exactly what the hit took."""
    algorithm = ALGORITHMS[name]()
    decision, state, _ = algorithm.step(None, START_US, 2)
    assert decision.allowed
    _, state2, _ = algorithm.step(state, START_US + 10, 1)
    assert _peek(algorithm, algorithm.refund(state2, START_US + 10, 1)[0], START_US + 10) == (
        _peek(algorithm, state, START_US + 10)
    )


def test_sliding_log_refunds_the_newest_admissions() -> None:
    algorithm = SlidingLog("5/10s")
    state = None
    for at, cost in ((0, 2), (4, 2)):
        state = algorithm.step(state, START_US + at * 1_000_000, cost)[1]
    now = START_US + 5_000_000
    state, expires_at = algorithm.refund(state, now, 3)
    # One unit is left, the one admitted at 0 s: it leaves the window at 10 s.
    assert expires_at == START_US + 10_000_000
    assert algorithm.step(state, now, 5, False)[0] == Decision(False, 5, 4, 5.0, 5.0)


def test_sliding_window_counter_refunds_only_the_current_window() -> None:
    algorithm = SlidingWindowCounter("10/10s")
    start = START_US - START_US % 10_000_000
    state = algorithm.step(None, start + 9_000_000, 6)[1]
    now = start + 12_000_000  # the next window: the 6 are its previous count, weighing 80 %
    before = _peek(algorithm, state, now)
    assert algorithm.refund(state, now, 6)[0] == state
    assert _peek(algorithm, algorithm.refund(state, now, 6)[0], now) == before
    state = algorithm.step(state, now, 2)[1]
    assert _peek(algorithm, algorithm.refund(state, now, 5)[0], now) == before


def test_fixed_window_refund_keeps_the_window() -> None:
    algorithm = FixedWindow("3/10s")
    state = algorithm.step(None, START_US, 3)[1]
    state, expires_at = algorithm.refund(state, START_US + 4_000_000, 5)
    assert state == (START_US, 0)
    assert expires_at == START_US + 10_000_000
    # The window ends when it was going to: the refund moved nothing in time.
    assert algorithm.step(state, START_US + 4_000_000, 1)[0].reset_after == 6.0
    assert algorithm.refund(state, START_US + 10_000_000, 1) == (None, 0)


def test_gcra_refund_after_a_clock_went_back_gives_back_only_the_amount() -> None:
    algorithm = GCRA("1/s", burst=4)
    state = algorithm.step(None, START_US, 4)[1]  # tat = START + 4 s
    refunded, expires_at = algorithm.refund(state, START_US - 60_000_000, 1)
    assert refunded == (START_US + 3_000_000, 0)
    assert expires_at == START_US + 3_000_000


@pytest.mark.parametrize(
    "algorithm",
    [TokenBucket("10/s", burst=10), LeakyBucket("10/s"), GCRA("10/s")],
    ids=["token_bucket", "leaky_bucket", "gcra"],
)
def test_a_bucket_refilled_to_the_brim_is_no_state(algorithm: Algorithm) -> None:
    assert isinstance(algorithm, Refundable)
    state = algorithm.step(None, START_US, 4)[1]
    assert algorithm.refund(state, START_US, 4) == (None, 0)
    assert algorithm.refund(state, START_US, 10**30) == (None, 0)
    partial, expires_at = algorithm.refund(state, START_US, 1)
    assert partial is not None
    assert expires_at == START_US + 300_000  # 3 units left, 0.1 s each


# -- the facades ------------------------------------------------------------------------------


BAD_AMOUNTS = [0, -1, 1.0, 2.5, True, "1", None, math.inf]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts_are_refused_before_anything_is_touched(amount: Any) -> None:
    backend = MemoryBackend()
    limiter = Limiter(TokenBucket("5/s"), backend, clock=ManualClock())
    limiter.hit("k", 3)

    def stored() -> dict[tuple[str, str], tuple[object, ...]]:
        tables = backend._tables.items()
        return {(n, k): tuple(entry) for n, table in tables for k, entry in table.entries.items()}

    before = stored()
    with pytest.raises(ConfigurationError, match="amount"):
        limiter.refund("k", amount)
    assert stored() == before
    with pytest.raises(ConfigurationError):
        limiter.refund("", 1)
    assert limiter.peek("k").remaining == 1  # 2 tokens, less the peek's 1


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_async_bad_amounts_are_refused(amount: Any) -> None:
    limiter = AsyncLimiter(TokenBucket("5/s"), MemoryBackend(), clock=ManualClock())
    await limiter.hit("k", 3)
    with pytest.raises(ConfigurationError, match="amount"):
        await limiter.refund("k", amount)
    assert (await limiter.peek("k")).remaining == 1


class _Plain:
    """An algorithm with no refund(): hits work, refunds are refused."""

    kind = "plain"
    namespace = "plain:1"
    limit = 1
    max_state_ttl_us = 1

    def step(self, state: Any, now_us: int, cost: int, consume: bool = True) -> Any:
        return FixedWindow("1/s").step(state, now_us, cost, consume)


def test_an_algorithm_without_refund_is_refused() -> None:
    limiter = Limiter(_Plain(), MemoryBackend())  # type: ignore[arg-type]
    assert limiter.hit("k").allowed
    with pytest.raises(ConfigurationError, match="cannot give back"):
        limiter.refund("k", 1)
    policy = Limiter([FixedWindow("2/s"), _Plain()], MemoryBackend())  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="cannot give back"):
        policy.refund("k", 1)


class _NoRefundBackend:
    """A backend implementing only the required operations."""

    def __init__(self) -> None:
        self._inner = MemoryBackend()

    def decide(self, algorithm: Algorithm, key: str, cost: int, now: Any, consume: bool) -> Any:
        return self._inner.decide(algorithm, key, cost, now, consume)

    def reset(self, algorithm: Algorithm, key: str) -> None:
        self._inner.reset(algorithm, key)

    def close(self) -> None:
        pass

    async def adecide(self, algorithm: Algorithm, key: str, cost: int, now: Any, c: bool) -> Any:
        return self.decide(algorithm, key, cost, now, c)

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        self.reset(algorithm, key)

    async def aclose(self) -> None:
        pass


async def test_a_backend_without_refund_is_refused_clearly() -> None:
    limiter = Limiter(FixedWindow("2/s"), _NoRefundBackend())
    assert limiter.hit("k").allowed
    with pytest.raises(ConfigurationError, match="_NoRefundBackend cannot give back cost"):
        limiter.refund("k", 1)
    alimiter = AsyncLimiter(FixedWindow("2/s"), _NoRefundBackend())
    with pytest.raises(ConfigurationError, match="_NoRefundBackend cannot give back cost"):
        await alimiter.refund("k", 1)


# -- every backend ----------------------------------------------------------------------------


def test_refund_of_an_unknown_key_stores_nothing(
    make_limiter: MakeLimiter, algorithm: Algorithm
) -> None:
    clock = ManualClock(START_US / 1e6)
    with make_limiter(algorithm, clock) as limiter:
        full = limiter.peek("nobody")
        assert limiter.refund("nobody", 3) == full
        assert full.remaining == algorithm.limit - 1  # a peek of 1 fits
        # Nothing was stored: a hit now sees a key that was never used.
        assert limiter.hit("nobody", algorithm.limit).allowed


@pytest.mark.parametrize("amount", [1, 2**53, 2**64, 2**200], ids=str)
def test_refund_amounts_at_the_edges(
    make_limiter: MakeLimiter, algorithm: Algorithm, amount: int
) -> None:
    """Huge amounts reach no driver or store as such: they give back the whole capacity."""
    with make_limiter(algorithm, new_clock()) as limiter:
        assert limiter.hit("{edge}", algorithm.limit).allowed
        after = limiter.refund("{edge}", amount)
        assert after.allowed
        assert after.remaining == (0 if amount == 1 else algorithm.limit - 1)
        assert limiter.hit("{edge}", 1 if amount == 1 else algorithm.limit).allowed
        assert limiter.peek("{edge}").denied


@fixture_ok
@given(key=hostile_keys)
def test_any_text_key_is_refunded_cleanly_or_refused(
    make_limiter: MakeLimiter, algorithm: Algorithm, key: str
) -> None:
    with make_limiter(algorithm, new_clock()) as limiter:
        if not _valid(key):
            with pytest.raises(ConfigurationError):
                limiter.refund(key, 1)
            return
        assert limiter.hit(key, algorithm.limit).allowed
        assert limiter.refund(key, algorithm.limit).remaining == algorithm.limit - 1
        assert limiter.hit(key, algorithm.limit).allowed


def test_llm_style_token_budget(make_limiter: MakeLimiter) -> None:
    """Reserve max_tokens, refund what the completion did not use."""
    clock = ManualClock(START_US / 1e6)
    with make_limiter(TokenBucket("10000/minute"), clock) as limiter:
        max_tokens, used = 4000, 0
        for completion in (1200, 3999, 250, 4000):
            assert limiter.hit("team:42", cost=max_tokens).allowed
            used += completion
            if completion < max_tokens:
                after = limiter.refund("team:42", max_tokens - completion)
            else:
                after = limiter.peek("team:42")
            # The decision is a peek's: what is left less the peek's one token.
            assert after.remaining == 10_000 - used - 1
        # 9449 used: the next reservation of 4000 does not fit, 551 does.
        assert limiter.hit("team:42", cost=max_tokens).denied
        assert limiter.hit("team:42", cost=551).allowed
        assert limiter.peek("team:42").denied
        # Refunds never overfill: give back far more than was ever taken.
        assert limiter.refund("team:42", 10**12).remaining == 9_999
        clock.advance(6)  # 1000 tokens would refill in 6 s, but the bucket is already full
        assert limiter.peek("team:42").remaining == 9_999
        assert limiter.hit("team:42", cost=10_000).allowed


async def test_async_llm_style_token_budget(make_async_limiter: MakeAsyncLimiter) -> None:
    clock = ManualClock(START_US / 1e6)
    async with make_async_limiter(TokenBucket("10000/minute"), clock) as limiter:
        assert (await limiter.hit("team:42", cost=4000)).allowed
        after = await limiter.refund("team:42", 2800)
        assert after.allowed
        assert after.remaining == 8799
        assert (await limiter.peek("team:42")) == after


@pytest.fixture(params=["memory", "redis", "redis-cluster", "postgres"])
def policy_limiters(request: pytest.FixtureRequest) -> MakeLimiter:
    name = {
        "memory": "memory_limiters",
        "redis": "redis_limiters",
        "redis-cluster": "redis_cluster_limiters",
        "postgres": "postgres_limiters",
    }[request.param]
    if request.param.startswith("redis"):
        request.applymarker(pytest.mark.redis)
    elif request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    factory: MakeLimiter = request.getfixturevalue(name)
    return factory


def test_a_policy_refund_gives_back_to_every_limit(policy_limiters: MakeLimiter) -> None:
    clock = ManualClock(START_US / 1e6)
    with policy_limiters(POLICY, clock) as limiter:
        assert limiter.hit("k", 3).allowed
        assert [d.remaining for d in limiter.peek("k").details] == [0, 1, 0]
        after = limiter.refund("k", 2)
        assert [d.remaining for d in after.details] == [1, 3, 2]
        assert after == limiter.peek("k")
        assert limiter.hit("k", 2).allowed
        assert limiter.hit("k", 2).denied  # the bucket holds 1 token, the window 0
        after = limiter.refund("k", 100)  # capped by each limit: back to full everywhere
        assert [d.remaining for d in after.details] == [2, 4, 3]
        assert limiter.hit("k", 3).allowed


@pytest.mark.postgres
async def test_an_async_postgres_policy_refund_gives_back_to_every_limit(
    postgres_async_limiters: MakeAsyncLimiter,
) -> None:
    clock = ManualClock(START_US / 1e6)
    limiter = postgres_async_limiters(POLICY, clock)
    try:
        assert (await limiter.hit("k", 3)).allowed
        after = await limiter.refund("k", 2)
        assert [d.remaining for d in after.details] == [1, 3, 2]
        assert after == await limiter.peek("k")
    finally:
        await limiter.aclose()


def _algorithm_and_program(draw: st.DrawFn, names: dict[str, Any]) -> tuple[Algorithm, list[Op]]:
    algorithm = names[draw(st.sampled_from(sorted(names)))]()
    return algorithm, draw(refund_programs(algorithm, keys=KEYS))


@st.composite
def algorithm_and_program(draw: st.DrawFn) -> tuple[Algorithm, list[Op]]:
    return _algorithm_and_program(draw, ALGORITHMS)


@st.composite
def policy_and_program(draw: st.DrawFn) -> tuple[Algorithm, list[Op]]:
    return _algorithm_and_program(draw, {"policy": algorithms_with_policy()["policy"]})


@fixture_ok
@given(case=algorithm_and_program())
def test_sync_refunds_agree_with_model(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(algorithm, program)


@fixture_ok
@given(case=algorithm_and_program())
async def test_async_refunds_agree_with_model(
    make_async_limiter: MakeAsyncLimiter, case: tuple[Algorithm, list[Op]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    async with make_async_limiter(algorithm, clock) as limiter:
        assert await run_async(limiter, clock, program) == run_model(algorithm, program)


@fixture_ok
@given(case=policy_and_program())
def test_policy_refunds_agree_with_model(
    policy_limiters: MakeLimiter, case: tuple[Algorithm, list[Op]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    with policy_limiters(algorithm, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(algorithm, program)


@st.composite
def program_with_a_clock_going_back(draw: st.DrawFn) -> tuple[Algorithm, list[Op]]:
    """Refunds can make an older admission the newest again; a clock that then goes back
    must still see the same decisions everywhere (the Redis log renames units for it)."""
    algorithm, program = _algorithm_and_program(draw, ALGORITHMS)
    back = st.builds(Advance, st.integers(-algorithm.max_state_ttl_us, -1))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(program)))
        program.insert(at, draw(back))
    return algorithm, program


@fixture_ok
@given(case=program_with_a_clock_going_back())
def test_refunds_agree_with_model_when_the_clock_goes_back(
    make_limiter: MakeLimiter, case: tuple[Algorithm, list[Op]]
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(algorithm, program)


def test_a_log_refunded_past_its_newest_time_then_hit_in_the_past(
    make_limiter: MakeLimiter,
) -> None:
    """The case the Redis log renames units for: hits at 0 s and 5 s (whose trim drops
    nothing here, but a later window would), the 5 s ones refunded, then hits at 0 s again."""
    algorithm = SlidingLog("12/10s")
    clock = ManualClock(START_US / 1e6)
    program: list[Op] = [Hit("a", 3), Advance(9_000_000), Hit("a", 2), Advance(2_000_000)]
    program += [Hit("a", 4), Refund("a", 5), Advance(-11_000_000), Hit("a", 3), Hit("a", 5)]
    program += [Peek("a", 1), Hit("a", 1), Refund("a", 2), Hit("a", 2), Peek("a", 2)]
    with make_limiter(algorithm, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(algorithm, program)
