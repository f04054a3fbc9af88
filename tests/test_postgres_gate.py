"""PoolGate: the bounded wait for a pool connection of the asyncio PostgreSQL backend."""

from __future__ import annotations

import asyncio

import pytest

from backends.postgres.gate import PoolGate


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
