"""``hit_many`` on every backend of the matrix, through both facades: the same decisions as the
same hits one by one, at one time, every request checked before anything is sent. A backend
without ``decide_many`` (``adecide_many``) is served by a loop of single decisions; the
wrappers below hide the batch call to test that loop on every backend too."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from algorithms import FixedWindow, SlidingLog
from limits_core import AsyncLimiter, ConfigurationError, Decision, Limiter
from limits_core.algorithm import Algorithm
from limits_core.backend import AsyncBackend, AsyncBatchBackend, Backend, BatchBackend
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.programs import START_US, Hit, Op, new_clock, run_async, run_model, run_sync
from tests.test_model_agreement import algorithm_and_program, fixture_ok

#: Repeated keys, costs up to past the limit (5 or 7 in the matrix's algorithms).
REQUESTS = [("a", 1), ("b", 2), ("a", 3), ("a", 1), ("c", 9), ("b", 1), ("a", 2), ("a", 1)]
BAD = [
    [("a", 1), ("", 1)],
    [("a", 1), ("b", 0)],
    [("a", 1), ("b", True)],
    [("a", 1), ("b", 1.0)],
    [("a", 1), "b"],
    [("a", 1), ("b", 1, 1)],
    "ab",
    3,
]


class LoopOnly:
    """A backend without ``decide_many`` / ``adecide_many``: what the facades' fallback serves."""

    def __init__(self, backend: Any) -> None:
        self.inner = backend

    def decide(self, *args: Any) -> Decision:
        decision: Decision = self.inner.decide(*args)
        return decision

    def reset(self, algorithm: Algorithm, key: str) -> None:
        self.inner.reset(algorithm, key)

    def close(self) -> None:
        self.inner.close()

    async def adecide(self, *args: Any) -> Decision:
        decision: Decision = await self.inner.adecide(*args)
        return decision

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        await self.inner.areset(algorithm, key)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingClock:
    """Frozen at the programs' start; counts its readings."""

    def __init__(self) -> None:
        self.reads = 0

    def now_us(self) -> int:
        self.reads += 1
        return START_US


def test_the_protocols_stay_optional() -> None:
    loop_only = LoopOnly(None)
    assert isinstance(loop_only, Backend)
    assert isinstance(loop_only, AsyncBackend)
    assert not isinstance(loop_only, BatchBackend)
    assert not isinstance(loop_only, AsyncBatchBackend)


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "loop"])
def test_sync_hit_many_is_the_hits_in_order(
    make_limiter: MakeLimiter, algorithm: Algorithm, batched: bool
) -> None:
    one_by_one = make_limiter(algorithm, new_clock())
    expected = [one_by_one.hit(key, cost) for key, cost in REQUESTS]
    clock = CountingClock()
    limiter = make_limiter(algorithm, clock)
    if not batched:
        limiter = Limiter(algorithm, LoopOnly(limiter.backend), clock=clock)  # type: ignore[arg-type]
    assert limiter.hit_many(iter(REQUESTS)) == expected
    assert clock.reads == 1
    assert limiter.hit_many([]) == []
    # The batch consumed what the hits did: both limiters now agree.
    assert [limiter.peek(k) for k in "abc"] == [one_by_one.peek(k) for k in "abc"]
    one_by_one.close()
    limiter.close()


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "loop"])
async def test_async_hit_many_is_the_hits_in_order(
    make_async_limiter: MakeAsyncLimiter, algorithm: Algorithm, batched: bool
) -> None:
    async with make_async_limiter(algorithm, new_clock()) as one_by_one:
        expected = [await one_by_one.hit(key, cost) for key, cost in REQUESTS]
        clock = CountingClock()
        async with make_async_limiter(algorithm, clock) as limiter:
            if not batched:
                backend = LoopOnly(limiter.backend)
                limiter = AsyncLimiter(algorithm, backend, clock=clock)  # type: ignore[arg-type]
            assert await limiter.hit_many(iter(REQUESTS)) == expected
            assert clock.reads == 1
            assert await limiter.hit_many([]) == []
            assert [await limiter.peek(k) for k in "abc"] == [
                await one_by_one.peek(k) for k in "abc"
            ]


@pytest.mark.parametrize("requests", BAD, ids=repr)
def test_sync_bad_input_touches_nothing(make_limiter: MakeLimiter, requests: Any) -> None:
    with make_limiter(FixedWindow("3/minute"), new_clock()) as limiter:
        with pytest.raises(ConfigurationError):
            limiter.hit_many(requests)
        assert limiter.peek("a").remaining == 2  # a peek reports what one more would leave


@pytest.mark.parametrize("requests", BAD, ids=repr)
async def test_async_bad_input_touches_nothing(
    make_async_limiter: MakeAsyncLimiter, requests: Any
) -> None:
    async with make_async_limiter(FixedWindow("3/minute"), new_clock()) as limiter:
        with pytest.raises(ConfigurationError):
            await limiter.hit_many(requests)
        assert (await limiter.peek("a")).remaining == 2


async def test_a_long_batch_on_one_key_admits_exactly_the_limit(
    make_async_limiter: MakeAsyncLimiter,
) -> None:
    async with make_async_limiter(SlidingLog("150/hour"), new_clock()) as limiter:
        decisions = await limiter.hit_many([("hot", 1)] * 400)
        assert [d.allowed for d in decisions] == [True] * 150 + [False] * 250
        assert [d.remaining for d in decisions[:150]] == list(range(149, -1, -1))


def batches(program: list[Op]) -> list[Op | list[Hit]]:
    """``program`` with each run of consecutive hits gathered into one batch."""
    grouped: list[Op | list[Hit]] = []
    for op in program:
        if isinstance(op, Hit):
            if grouped and isinstance(grouped[-1], list):
                grouped[-1].append(op)
            else:
                grouped.append([op])
        else:
            grouped.append(op)
    return grouped


@fixture_ok
@given(case=algorithm_and_program())
def test_sync_batches_agree_with_the_model(
    make_limiter: MakeLimiter,
    case: tuple[Algorithm, list[Op]],
) -> None:
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        out: list[Decision | None] = []
        for step in batches(program):
            if isinstance(step, list):
                out += limiter.hit_many([(hit.key, hit.cost) for hit in step])
            else:
                out += run_sync(limiter, clock, [step])
        assert out == run_model(algorithm, program)


@fixture_ok
@given(case=algorithm_and_program())
async def test_async_batches_agree_with_the_model(
    make_async_limiter: MakeAsyncLimiter,
    case: tuple[Algorithm, list[Op]],
) -> None:
    algorithm, program = case
    clock = new_clock()
    async with make_async_limiter(algorithm, clock) as limiter:
        out: list[Decision | None] = []
        for step in batches(program):
            if isinstance(step, list):
                out += await limiter.hit_many([(hit.key, hit.cost) for hit in step])
            else:
                out += await run_async(limiter, clock, [step])
        assert out == run_model(algorithm, program)
