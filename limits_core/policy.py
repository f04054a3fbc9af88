"""Policies: several limits on one key, checked together, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from limits_core.algorithm import Algorithm, Refundable, RefundResult, StepResult
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError

__all__ = ["Policy"]


def _default_name(algorithm: Algorithm) -> str:
    rate = getattr(algorithm, "rate", None)
    return str(rate) if rate is not None else algorithm.kind


@dataclass(frozen=True, init=False)
class Policy:
    """Several limits on the same key, such as "10 per second and 1,000 per day".

    A request is admitted only if every limit admits it, and then consumes from every limit;
    a request denied by any limit consumes from none. The check is one atomic step on every
    backend. ``Limiter([a, b], backend)`` builds a policy from a list.

    The returned :class:`~limits_core.Decision` describes the most restrictive limit: when
    allowed, the one with the least ``remaining``; when denied, the denied one with the longest
    ``retry_after``. Its ``reset_after`` and ``retry_after`` are the longest of all limits, so
    waiting ``retry_after`` satisfies every limit. ``details`` holds each limit's own decision
    (for a denied request, each limit's verdict as if it stood alone).

    :meth:`refund` gives ``amount`` back to every limit, in one atomic step: an admitted
    request consumed from all of them.

    Args:
        algorithms: the limits, in the order of ``details`` and of the HTTP headers.
        names: a name per limit for the ``RateLimit`` headers; the rates by default.
    """

    kind: ClassVar[str] = "policy"
    algorithms: tuple[Algorithm, ...]
    names: tuple[str, ...]
    namespace: str = field(init=False, repr=False, compare=False)

    def __init__(self, *algorithms: Algorithm, names: Sequence[str] | None = None) -> None:
        if len(algorithms) == 1 and isinstance(algorithms[0], list | tuple):
            algorithms = tuple(algorithms[0])
        if not algorithms:
            raise ConfigurationError("a policy needs at least one algorithm")
        for algorithm in algorithms:
            if not isinstance(algorithm, Algorithm) or isinstance(algorithm, Policy):
                raise ConfigurationError(f"not an algorithm of a policy: {algorithm!r}")
        if len({a.namespace for a in algorithms}) != len(algorithms):
            raise ConfigurationError("a policy must not hold the same limit twice")
        chosen = tuple(names) if names is not None else tuple(map(_default_name, algorithms))
        if len(chosen) != len(algorithms) or len(set(chosen)) != len(chosen):
            raise ConfigurationError("a policy needs one distinct name per algorithm")
        object.__setattr__(self, "algorithms", tuple(algorithms))
        object.__setattr__(self, "names", chosen)
        object.__setattr__(
            self, "namespace", "p(" + ",".join(a.namespace for a in algorithms) + ")"
        )

    @property
    def limit(self) -> int:
        """The largest cost every limit could admit at once."""
        return min(a.limit for a in self.algorithms)

    @property
    def max_state_ttl_us(self) -> int:
        return max(a.max_state_ttl_us for a in self.algorithms)

    def step(self, state: Any, now_us: int, cost: int, consume: bool = True) -> StepResult:
        states = state if state is not None else (None,) * len(self.algorithms)
        results = [
            algorithm.step(part, now_us, cost, consume)
            for algorithm, part in zip(self.algorithms, states, strict=True)
        ]
        decision = combine([r[0] for r in results])
        if not decision.allowed:
            return decision, state, 0
        return decision, tuple(r[1] for r in results), max(r[2] for r in results)

    def refund(self, state: Any, now_us: int, amount: int) -> RefundResult:
        """Give ``amount`` back to every limit (each as its own ``refund`` says)."""
        parts = []
        for algorithm in self.algorithms:
            if not isinstance(algorithm, Refundable):
                raise ConfigurationError(f"{algorithm!r} cannot give back cost")
            parts.append(algorithm)
        if state is None:
            return None, 0
        results = [a.refund(s, now_us, amount) for a, s in zip(parts, state, strict=True)]
        if all(r[0] is None for r in results):
            return None, 0
        return tuple(r[0] for r in results), max(r[1] for r in results)


def combine(decisions: Sequence[Decision]) -> Decision:
    """The policy decision over each limit's decision (see :class:`Policy`).

    Every backend builds policy decisions through this function.
    """
    allowed = all(d.allowed for d in decisions)
    if allowed:
        worst = min(decisions, key=lambda d: d.remaining)
    else:
        worst = max((d for d in decisions if not d.allowed), key=lambda d: d.retry_after)
    return Decision(
        allowed,
        worst.limit,
        worst.remaining,
        max(d.reset_after for d in decisions),
        max(d.retry_after for d in decisions),
        tuple(decisions),
    )
