"""The algorithm protocol: a pure, deterministic step over integer microseconds."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from limits_core.decision import Decision

__all__ = ["NEVER", "Algorithm", "RefundResult", "Refundable", "StepResult"]

#: ``retry_after_us`` of a request that can never be admitted.
NEVER = -1

#: ``(decision, new_state, expires_at_us)``. ``new_state`` and ``expires_at_us`` are meaningful
#: only when the decision is allowed: a denied request changes nothing.
StepResult: TypeAlias = tuple[Decision, Any, int]

#: ``(new_state, expires_at_us)`` of a refund. ``new_state`` is ``None`` when nothing is left
#: worth storing (the key then behaves as one never used): the backend deletes the key.
RefundResult: TypeAlias = tuple[Any, int]


@runtime_checkable
class Algorithm(Protocol):
    """A rate-limiting algorithm as a pure state machine.

    ``step(state, now_us, cost, consume)`` is the specification every backend implements
    atomically: the in-memory backend runs it under a lock (or, for the built-in algorithms, a
    fused form of it), the Redis and PostgreSQL backends run a script or statement; each must
    agree with it decision by decision. ``state`` is ``None`` for a key with no stored state.
    Times are integer microseconds since the Unix epoch; per key, time never runs backwards (a
    smaller ``now_us`` than the state's newest time is treated as that time), so a clock that
    goes backwards grants nothing.
    """

    #: Short stable name of the algorithm, used in store keys and scripts ("fixed_window").
    kind: ClassVar[str]

    @property
    def namespace(self) -> str:
        """A store-key segment unique to this algorithm and its parameters."""
        ...

    @property
    def limit(self) -> int:
        """The most cost ever admissible at once (``Decision.limit``)."""
        ...

    @property
    def max_state_ttl_us(self) -> int:
        """Upper bound on how long stored state can matter after the last admitted hit."""
        ...

    def step(self, state: Any, now_us: int, cost: int, consume: bool = True) -> StepResult:
        """Decide a request of ``cost`` at ``now_us`` against ``state``.

        With ``consume=False`` (a peek) the decision is the same but no new state is built.
        """
        ...


@runtime_checkable
class Refundable(Protocol):
    """An algorithm that can give back cost it admitted (token budgets).

    ``refund(state, now_us, amount)`` is pure, like ``step``: it returns the state after giving
    back ``amount`` (an int >= 1) at ``now_us`` and the time that state stops mattering. A
    refund never raises the capacity above the limit, never makes a count negative, and never
    creates state: ``refund(None, ...)`` is ``(None, 0)``. Per key, time never runs backwards,
    as in ``step``. Each algorithm's docstring says what a refund gives back.
    """

    def refund(self, state: Any, now_us: int, amount: int) -> RefundResult:
        """Give back ``amount`` of cost to ``state`` at ``now_us``."""
        ...
