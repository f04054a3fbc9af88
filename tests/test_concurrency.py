"""Hammer one key far past its limit from threads and tasks: exactly ``limit`` are admitted.

Time is frozen with a ManualClock, so the only thing under test is atomicity: any lost update
would admit more than the limit.
"""

from __future__ import annotations

import asyncio
import threading

from limits_core.algorithm import Algorithm
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.programs import new_clock

THREADS = 16
TASKS = 200


def _scaled(algorithm: Algorithm) -> Algorithm:
    """The same algorithm with a limit large enough for real contention."""
    kind = type(algorithm)
    return kind("150/hour")  # type: ignore[call-arg]


def test_threads_admit_exactly_the_limit(make_limiter: MakeLimiter, algorithm: Algorithm) -> None:
    algorithm = _scaled(algorithm)
    per_thread = 3 * algorithm.limit // THREADS + 1
    with make_limiter(algorithm, new_clock()) as limiter:
        admitted = [0] * THREADS
        barrier = threading.Barrier(THREADS)

        def worker(i: int) -> None:
            barrier.wait()
            for _ in range(per_thread):
                admitted[i] += limiter.hit("hot").allowed

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert THREADS * per_thread > 2 * algorithm.limit
        assert sum(admitted) == algorithm.limit
        assert limiter.peek("hot").remaining == 0


async def test_tasks_admit_exactly_the_limit(
    make_async_limiter: MakeAsyncLimiter, algorithm: Algorithm
) -> None:
    algorithm = _scaled(algorithm)
    per_task = 3
    async with make_async_limiter(algorithm, new_clock()) as limiter:

        async def worker() -> int:
            return sum([(await limiter.hit("hot")).allowed for _ in range(per_task)])

        admitted = await asyncio.gather(*(worker() for _ in range(TASKS)))
        assert TASKS * per_task > 2 * algorithm.limit
        assert sum(admitted) == algorithm.limit
        assert (await limiter.peek("hot")).remaining == 0


async def test_weighted_tasks_never_exceed_the_limit(
    make_async_limiter: MakeAsyncLimiter, algorithm: Algorithm
) -> None:
    """Costs of 1 to 7: the admitted cost fills the limit without passing it."""
    algorithm = _scaled(algorithm)
    async with make_async_limiter(algorithm, new_clock()) as limiter:

        async def worker(cost: int) -> int:
            return cost if (await limiter.hit("hot", cost)).allowed else 0

        admitted = await asyncio.gather(*(worker(1 + i % 7) for i in range(TASKS)))
        assert sum(admitted) <= algorithm.limit
        # Once denials start, only requests bigger than what is left are refused.
        assert algorithm.limit - sum(admitted) < 7
