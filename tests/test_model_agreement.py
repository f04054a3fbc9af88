"""Every backend, through both facades, agrees with the pure model decision by decision."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limits_core.algorithm import Algorithm
from tests.conftest import ALGORITHMS, MakeAsyncLimiter, MakeLimiter
from tests.support.programs import KEYS, new_clock, programs, run_async, run_model, run_sync

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def algorithm_and_program(draw: st.DrawFn) -> tuple[Algorithm, list]:  # type: ignore[type-arg]
    algorithm = ALGORITHMS[draw(st.sampled_from(sorted(ALGORITHMS)))]()
    return algorithm, draw(programs(algorithm, keys=KEYS))


@fixture_ok
@given(case=algorithm_and_program())
def test_sync_agrees_with_model(make_limiter: MakeLimiter, case: tuple[Algorithm, list]) -> None:  # type: ignore[type-arg]
    algorithm, program = case
    clock = new_clock()
    with make_limiter(algorithm, clock) as limiter:
        assert run_sync(limiter, clock, program) == run_model(algorithm, program)


@fixture_ok
@given(case=algorithm_and_program())
async def test_async_agrees_with_model(
    make_async_limiter: MakeAsyncLimiter,
    case: tuple[Algorithm, list],  # type: ignore[type-arg]
) -> None:
    algorithm, program = case
    clock = new_clock()
    async with make_async_limiter(algorithm, clock) as limiter:
        assert await run_async(limiter, clock, program) == run_model(algorithm, program)
