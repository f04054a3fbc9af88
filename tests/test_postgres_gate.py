"""PoolGate: the bounded wait for a pool connection of the asyncio PostgreSQL backend."""

from __future__ import annotations

import asyncio

import pytest

from algorithms import FixedWindow
from backends.postgres import AsyncPostgresBackend
from backends.postgres.gate import PoolGate
from limits_core import AsyncLimiter, ManualClock


async def test_places_are_taken_then_handed_over_in_fifo_order() -> None:
    gate = PoolGate(2, timeout=30)
    assert gate.try_enter()
    assert gate.try_enter()
    assert not gate.try_enter()
    order: list[int] = []

    async def wait(i: int) -> None:
        await gate.enter()
        order.append(i)

    waiters = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert order == []
    for _ in range(3):
        gate.leave()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    for _ in range(2):
        gate.leave()
    # Every place is back: two free ones, none more.
    assert gate.try_enter()
    assert gate.try_enter()
    assert not gate.try_enter()
    gate.close()


async def test_a_wait_ends_with_timeout_error() -> None:
    gate = PoolGate(1, timeout=0.05)
    assert gate.try_enter()
    with pytest.raises(TimeoutError):
        await gate.enter()
    gate.leave()
    assert gate.try_enter()  # the timed-out waiter took nothing
    gate.close()


async def test_a_cancelled_waiter_takes_no_place() -> None:
    gate = PoolGate(1, timeout=30)
    assert gate.try_enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.leave()
    assert gate.try_enter()
    assert not gate.try_enter()
    gate.close()


async def test_a_place_given_to_a_task_cancelled_at_once_is_passed_on() -> None:
    gate = PoolGate(1, timeout=30)
    assert gate.try_enter()
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    gate.leave()  # the place goes to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=5)  # so `second` gets it
    assert not gate.try_enter()
    gate.close()


async def test_a_connection_is_handed_over_with_its_place() -> None:
    released: list[str] = []

    async def release(connection: str) -> None:
        released.append(connection)

    gate = PoolGate(1, timeout=30, release=release)
    assert gate.try_enter()
    assert not gate.hand_over("c")  # nobody waits: the caller releases it and leaves
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert gate.hand_over("c")
    assert await waiter == "c"
    assert not gate.try_enter()  # the place went with the connection
    gate.leave()
    assert await asyncio.wait_for(gate.enter(), timeout=5) is None  # a place, no connection
    assert released == []
    gate.close()


async def test_a_gate_without_release_takes_no_connection() -> None:
    gate = PoolGate(1, timeout=30)
    assert gate.try_enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert not gate.hand_over("c")
    gate.leave()
    assert await waiter is None
    gate.close()


async def test_a_connection_handed_to_a_cancelled_task_is_passed_on_or_released() -> None:
    released: list[str] = []

    async def release(connection: str) -> None:
        released.append(connection)

    gate = PoolGate(1, timeout=30, release=release)
    assert gate.try_enter()
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert gate.hand_over("c")  # to `first`...
    first.cancel()  # ...cancelled before it runs again: `second` gets the connection
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, timeout=5) == "c"
    third = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    assert gate.hand_over("d")
    third.cancel()  # nobody else waits: "d" goes back to the pool, then the place
    with pytest.raises(asyncio.CancelledError):
        await third
    for _ in range(3):
        await asyncio.sleep(0)
    assert released == ["d"]
    assert gate.try_enter()
    assert not gate.try_enter()
    gate.close()


@pytest.mark.postgres
async def test_connections_go_back_to_the_pool_once_nobody_waits(
    postgres_dsn: str, pg_table: str
) -> None:
    """Handed from task to task during a burst, every connection is in the pool afterwards:
    the backend's pool stays usable by others, and counts stay exact."""
    backend = AsyncPostgresBackend(postgres_dsn, table=pg_table, pool_size=3)
    limiter = AsyncLimiter(FixedWindow("100/day"), backend, clock=ManualClock())
    try:
        results = await asyncio.gather(*(limiter.hit("k") for _ in range(150)))
        assert sum(d.allowed for d in results) == 100
        pool = backend.pool
        assert pool.get_idle_size() == pool.get_size() > 0
        assert await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=5) == 1
    finally:
        await backend.aclose()
