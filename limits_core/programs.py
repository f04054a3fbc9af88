"""Random programs of (advance the clock, hit, peek, refund, reset) and the pure model that
judges them.

A program runs against the reference model (the algorithm's ``step`` over a dict) and against a
limiter on any backend driven by a :class:`~limits_core.ManualClock`; the two must agree
decision by decision. ``limits-core verify`` runs such programs on a live store; programs come
from a seeded :class:`random.Random`, so a failure is replayed by its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from limits_core.algorithm import Algorithm, Refundable
from limits_core.clock import ManualClock
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError
from limits_core.limiter import AsyncLimiter, Limiter

__all__ = [
    "KEYS",
    "START_US",
    "Advance",
    "Hit",
    "Model",
    "Op",
    "Peek",
    "Refund",
    "Reset",
    "random_program",
    "run_async",
    "run_model",
    "run_sync",
]

#: Key suffixes with the characters that break naive store keys: separators, Redis hash-tag
#: braces, non-ASCII text.
KEYS = ("a", "a:b", "{x}y", "}", "ключ")
#: Where every program's clock starts (2023-11-14, in µs).
START_US = 1_700_000_000_000_000


@dataclass(frozen=True)
class Advance:
    """Move the clock forward by ``us`` microseconds."""

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
class Refund:
    """Give back ``amount`` of cost (:meth:`Limiter.refund <limits_core.Limiter.refund>`)."""

    key: str
    amount: int


@dataclass(frozen=True)
class Reset:
    key: str


Op = Advance | Hit | Peek | Refund | Reset


def _advance(rng: random.Random, period_us: int) -> Advance:
    # Favour the interesting places: no time at all, tiny steps, and around one period.
    choice = rng.randrange(5)
    if choice == 0:
        return Advance(0)
    if choice == 1:
        return Advance(rng.randint(1, 1000))
    if choice == 2:
        return Advance(rng.randint(0, period_us // 5))
    if choice == 3:
        return Advance(rng.choice((period_us - 1, period_us, period_us + 1, period_us // 2)))
    return Advance(rng.randint(0, 3 * period_us))


def random_program(
    rng: random.Random, algorithm: Algorithm, keys: tuple[str, ...], max_ops: int = 40
) -> list[Op]:
    """A program of up to ``max_ops`` operations on ``keys``, costs from 1 to past the limit."""
    period_us = max(algorithm.max_state_ttl_us, 1)
    program: list[Op] = []
    for _ in range(rng.randint(0, max_ops)):
        kind = rng.randrange(5)  # hits are twice as likely as the other operations
        if kind == 0:
            program.append(_advance(rng, period_us))
            continue
        key = rng.choice(keys)
        if kind == 4:
            program.append(Reset(key))
            continue
        cost = 1 if rng.random() < 0.5 else rng.randint(1, algorithm.limit + 2)
        program.append(Peek(key, cost) if kind == 3 else Hit(key, cost))
    return program


class Model:
    """The reference model: ``algorithm.step`` over a dict of states, no I/O."""

    def __init__(self, algorithm: Algorithm, start_us: int = START_US) -> None:
        self.algorithm = algorithm
        self.now_us = start_us
        self.states: dict[str, Any] = {}

    def apply(self, op: Op) -> Decision | None:
        """The decision for ``op`` (``None`` for a clock step or a reset)."""
        if isinstance(op, Advance):
            self.now_us += op.us
            return None
        if isinstance(op, Reset):
            self.states.pop(op.key, None)
            return None
        if isinstance(op, Refund):
            return self._refund(op)
        # The limiter sends at most limit + 1: anything above is denied the same way.
        cost = min(op.cost, self.algorithm.limit + 1)
        consume = isinstance(op, Hit)
        decision, state, _ = self.algorithm.step(
            self.states.get(op.key), self.now_us, cost, consume
        )
        if consume and decision.allowed:
            self.states[op.key] = state
        return decision

    def _refund(self, op: Refund) -> Decision:
        algorithm = self.algorithm
        if not isinstance(algorithm, Refundable):
            raise ConfigurationError(f"{algorithm!r} cannot give back cost: it has no refund()")
        parts = getattr(algorithm, "algorithms", (algorithm,))
        # The limiter sends at most the largest limit: no limit can give back more.
        amount = min(op.amount, max(part.limit for part in parts))
        state, _ = algorithm.refund(self.states.get(op.key), self.now_us, amount)
        if state is None:
            self.states.pop(op.key, None)
        else:
            self.states[op.key] = state
        return algorithm.step(state, self.now_us, 1, False)[0]


def run_model(algorithm: Algorithm, program: list[Op]) -> list[Decision | None]:
    """The model's decisions for ``program``, one per operation."""
    model = Model(algorithm)
    return [model.apply(op) for op in program]


def run_sync(limiter: Limiter, clock: ManualClock, program: list[Op]) -> list[Decision | None]:
    """Run ``program`` through ``limiter``, whose clock is ``clock``; one entry per operation."""
    out: list[Decision | None] = []
    for op in program:
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
            out.append(None)
        elif isinstance(op, Hit):
            out.append(limiter.hit(op.key, op.cost))
        elif isinstance(op, Peek):
            out.append(limiter.peek(op.key, op.cost))
        elif isinstance(op, Refund):
            out.append(limiter.refund(op.key, op.amount))
        else:
            limiter.reset(op.key)
            out.append(None)
    return out


async def run_async(
    limiter: AsyncLimiter, clock: ManualClock, program: list[Op]
) -> list[Decision | None]:
    """The asyncio twin of :func:`run_sync`."""
    out: list[Decision | None] = []
    for op in program:
        if isinstance(op, Advance):
            clock.advance(op.us / 1_000_000)
            out.append(None)
        elif isinstance(op, Hit):
            out.append(await limiter.hit(op.key, op.cost))
        elif isinstance(op, Peek):
            out.append(await limiter.peek(op.key, op.cost))
        elif isinstance(op, Refund):
            out.append(await limiter.refund(op.key, op.amount))
        else:
            await limiter.reset(op.key)
            out.append(None)
    return out
