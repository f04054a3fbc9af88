"""Programs of lease operations (acquire, release, peek, reset, clock steps) for
:class:`~algorithms.Concurrency`, the pure model that judges them, and runners for both facades.

A release names a lease by its index among the program's acquires so far (modulo their
number), so a program can release a lease twice, release a denied one, or release one that
has expired: all must agree with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from algorithms import Concurrency
from limits_core import AsyncLimiter, Decision, Lease, Limiter, ManualClock
from tests.support.programs import KEYS, START_US, Advance, Peek, Reset

__all__ = [
    "Acquire",
    "LeaseOp",
    "Release",
    "lease_programs",
    "run_lease_async",
    "run_lease_model",
    "run_lease_sync",
]


@dataclass(frozen=True)
class Acquire:
    key: str
    cost: int


@dataclass(frozen=True)
class Release:
    index: int


LeaseOp = Advance | Acquire | Release | Peek | Reset
#: One entry per operation: a decision (acquire, peek), whether a release released anything,
#: or None (clock steps, resets, a release before any acquire).
Outcome = Decision | bool | None


def lease_programs(
    algorithm: Concurrency, *, max_ops: int = 40, keys: tuple[str, ...] = KEYS[:3]
) -> st.SearchStrategy[list[LeaseOp]]:
    """Programs whose costs go from 1 to past the limit, with clock steps around the lease
    time-to-live (and a few backwards)."""
    ttl = algorithm.lease_ttl_us
    key = st.sampled_from(keys)
    cost = st.one_of(st.just(1), st.integers(1, algorithm.limit + 2))
    advance = st.builds(
        Advance,
        st.one_of(
            st.just(0),
            st.integers(1, 1000),
            st.integers(0, ttl // 3),
            st.sampled_from([ttl - 1, ttl, ttl + 1, ttl // 2]),
            st.integers(-ttl // 2, 0),
        ),
    )
    op = st.one_of(
        advance,
        st.builds(Acquire, key, cost),
        st.builds(Acquire, key, cost),
        st.builds(Release, st.integers(0, 50)),
        st.builds(Release, st.integers(0, 50)),
        st.builds(Peek, key, cost),
        st.builds(Reset, key),
    )
    return st.lists(op, max_size=max_ops)


@dataclass
class _ModelLease:
    key: str
    id: int
    allowed: bool


def run_lease_model(algorithm: Concurrency, program: list[LeaseOp]) -> list[Outcome]:
    """The model's outcome of each operation; checks on the way that the cost in flight never
    exceeds the limit on any key."""
    states: dict[str, Any] = {}
    leases: list[_ModelLease] = []
    now = START_US
    out: list[Outcome] = []
    for op in program:
        result: Outcome = None
        if isinstance(op, Advance):
            now += op.us
        elif isinstance(op, Reset):
            states.pop(op.key, None)
        elif isinstance(op, Peek):
            cost = min(op.cost, algorithm.limit + 1)
            result = algorithm.step(states.get(op.key), now, cost, False)[0]
        elif isinstance(op, Acquire):
            cost = min(op.cost, algorithm.limit + 1)
            decision, state, _ = algorithm.acquire(states.get(op.key), now, len(leases), cost)
            if decision.allowed:
                states[op.key] = state
            leases.append(_ModelLease(op.key, len(leases), decision.allowed))
            result = decision
        elif leases:
            lease = leases[op.index % len(leases)]
            result = False
            if lease.allowed:
                result, state, _ = algorithm.release(states.get(lease.key), now, lease.id)
                if state is None:
                    states.pop(lease.key, None)
                else:
                    states[lease.key] = state
        for state in states.values():
            assert sum(cost for expires_at, _, cost in state if expires_at > now) <= algorithm.limit
        out.append(result)
    return out


def run_lease_sync(limiter: Limiter, clock: ManualClock, program: list[LeaseOp]) -> list[Outcome]:
    """Run ``program`` through ``limiter``, whose clock is ``clock``."""
    leases: list[Lease] = []
    out: list[Outcome] = []
    for op in program:
        result: Outcome = None
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
        elif isinstance(op, Reset):
            limiter.reset(op.key)
        elif isinstance(op, Peek):
            result = limiter.peek(op.key, op.cost)
        elif isinstance(op, Acquire):
            leases.append(limiter.acquire(op.key, op.cost))
            result = leases[-1].decision
        elif leases:
            result = limiter.release(leases[op.index % len(leases)])
        out.append(result)
    return out


async def run_lease_async(
    limiter: AsyncLimiter, clock: ManualClock, program: list[LeaseOp]
) -> list[Outcome]:
    """The asyncio twin of :func:`run_lease_sync`."""
    leases: list[Lease] = []
    out: list[Outcome] = []
    for op in program:
        result: Outcome = None
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
        elif isinstance(op, Reset):
            await limiter.reset(op.key)
        elif isinstance(op, Peek):
            result = await limiter.peek(op.key, op.cost)
        elif isinstance(op, Acquire):
            leases.append(await limiter.acquire(op.key, op.cost))
            result = leases[-1].decision
        elif leases:
            result = await limiter.release(leases[op.index % len(leases)])
        out.append(result)
    return out
