"""Generated programs of (advance the clock, hit, peek, reset) and the pure model that judges them.

A program runs against the reference model (the algorithm's ``step`` over a dict) and against a
limiter on a real backend driven by a :class:`ManualClock`; the two must agree decision by
decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from limits_core import AsyncLimiter, Decision, Limiter, ManualClock
from limits_core.algorithm import Algorithm

#: Keys with the characters that break naive store keys: separators and Redis hash-tag braces.
KEYS = ("a", "a:b", "{x}y", "}", "ключ")
START_US = 1_700_000_000_000_000


@dataclass(frozen=True)
class Advance:
    us: int


@dataclass(frozen=True)
class Hit:
    key: str
    cost: int


@dataclass(frozen=True)
class Peek:
    key: str
    cost: int


@dataclass(frozen=True)
class Reset:
    key: str


Op = Advance | Hit | Peek | Reset


def advances(period_us: int) -> st.SearchStrategy[Advance]:
    """Clock steps that favour the interesting places: none, tiny, and around a period."""
    return st.builds(
        Advance,
        st.one_of(
            st.just(0),
            st.integers(1, 1000),
            st.integers(0, period_us // 5),
            st.sampled_from([period_us - 1, period_us, period_us + 1, period_us // 2]),
            st.integers(0, 3 * period_us),
        ),
    )


def programs(
    algorithm: Algorithm, *, max_ops: int = 40, keys: tuple[str, ...] = KEYS[:3]
) -> st.SearchStrategy[list[Op]]:
    """Programs whose costs go from 1 to past the limit, on a few keys."""
    period_us = algorithm.max_state_ttl_us
    key = st.sampled_from(keys)
    cost = st.one_of(st.just(1), st.integers(1, algorithm.limit + 2))
    op = st.one_of(
        advances(period_us),
        st.builds(Hit, key, cost),
        st.builds(Hit, key, cost),
        st.builds(Peek, key, cost),
        st.builds(Reset, key),
    )
    return st.lists(op, max_size=max_ops)


class Model:
    """The reference model: ``algorithm.step`` over a dict of states, no I/O."""

    def __init__(self, algorithm: Algorithm, start_us: int = START_US) -> None:
        self.algorithm = algorithm
        self.now_us = start_us
        self.states: dict[str, Any] = {}

    def apply(self, op: Op) -> Decision | None:
        if isinstance(op, Advance):
            self.now_us += op.us
            return None
        if isinstance(op, Reset):
            self.states.pop(op.key, None)
            return None
        # The limiter sends at most limit + 1: anything above is denied the same way.
        cost = min(op.cost, self.algorithm.limit + 1)
        consume = isinstance(op, Hit)
        decision, state, _ = self.algorithm.step(
            self.states.get(op.key), self.now_us, cost, consume
        )
        if consume and decision.allowed:
            self.states[op.key] = state
        return decision


def run_model(algorithm: Algorithm, program: list[Op]) -> list[Decision | None]:
    model = Model(algorithm)
    return [model.apply(op) for op in program]


def run_sync(limiter: Limiter, clock: ManualClock, program: list[Op]) -> list[Decision | None]:
    out: list[Decision | None] = []
    for op in program:
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
            out.append(None)
        elif isinstance(op, Hit):
            out.append(limiter.hit(op.key, op.cost))
        elif isinstance(op, Peek):
            out.append(limiter.peek(op.key, op.cost))
        else:
            limiter.reset(op.key)
            out.append(None)
    return out


async def run_async(
    limiter: AsyncLimiter, clock: ManualClock, program: list[Op]
) -> list[Decision | None]:
    out: list[Decision | None] = []
    for op in program:
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
            out.append(None)
        elif isinstance(op, Hit):
            out.append(await limiter.hit(op.key, op.cost))
        elif isinstance(op, Peek):
            out.append(await limiter.peek(op.key, op.cost))
        else:
            await limiter.reset(op.key)
            out.append(None)
    return out


def new_clock() -> ManualClock:
    return ManualClock(start=START_US / 1_000_000)
