"""A deliberately broken store: the in-memory backend, over-admitting now and then.

``verify`` must catch it. Every ``every``-th request the real store denies (with ``consume``)
is reported as allowed instead, as a store with a lost-update bug would.
"""

from __future__ import annotations

import threading

from backends.memory import MemoryBackend
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision


class OverAdmittingBackend:
    """Wraps a real :class:`MemoryBackend`; serves both facades, like the backend it wraps."""

    def __init__(self, every: int = 10) -> None:
        self.inner = MemoryBackend()
        self.every = every
        self.denied = 0
        self.over_admitted = 0
        self._lock = threading.Lock()

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        decision = self.inner.decide(algorithm, key, cost, now_us, consume)
        if decision.allowed or not consume:
            return decision
        with self._lock:
            self.denied += 1
            if self.denied % self.every:
                return decision
            self.over_admitted += 1
        return Decision(True, decision.limit, decision.remaining, decision.reset_after, 0.0)

    def reset(self, algorithm: Algorithm, key: str) -> None:
        self.inner.reset(algorithm, key)

    def close(self) -> None:
        self.inner.close()

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        return self.decide(algorithm, key, cost, now_us, consume)

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        self.reset(algorithm, key)

    async def aclose(self) -> None:
        self.close()
