"""Concurrency: at most ``limit`` cost in flight at once, held by leases that expire."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from limits_core.algorithm import NEVER, StepResult
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError
from limits_core.rate import MAX_LIMIT, MAX_PERIOD

__all__ = ["Concurrency"]

#: One live lease: ``(expires_at_us, lease_id, cost)``.
LeaseEntry = tuple[int, int, int]
#: The live leases of a key, oldest first; ``None`` when none is held.
ConcurrencyState = tuple[LeaseEntry, ...]

_HIT = (
    "a Concurrency limit holds capacity until it is released: take it with "
    "limiter.acquire(key) / release(lease), or `with limiter.lease(key):`, not hit() (a hit "
    "would hold an anonymous slot until lease_ttl)"
)


@dataclass(frozen=True, init=False)
class Concurrency:
    """At most ``limit`` cost in flight at once: the limit of work in progress, not of a rate.

    ``Limiter.acquire(key, cost)`` takes a lease holding ``cost`` of the limit, and
    ``Limiter.release(lease)`` gives it back (``with limiter.lease(key):`` does both). A lease
    nobody releases expires ``lease_ttl`` seconds after it was taken, so a holder that crashed
    cannot leak capacity; choose ``lease_ttl`` above the longest legitimate hold, since an
    expired lease's work may still be running when its slot is handed out again.

    A lease taken at ``t`` holds its cost while ``now < t + lease_ttl``. Releasing is
    idempotent: releasing a lease twice, an expired lease or an unknown one changes nothing.

    - ``remaining``: ``limit`` minus the cost in flight (after this acquire, when allowed).
    - ``reset_after``: time until every current lease has expired, if none is released.
    - ``retry_after``: time until enough leases *expire* for this request to fit: an upper
      bound, since a release frees capacity sooner; ``inf`` if ``cost > limit``.
    - Memory per key: one entry per live lease (at most ``limit``), each an expiry, an id and
      a cost; each operation costs time linear in the live leases of the key.

    ``hit`` is refused (it would hold an anonymous slot until ``lease_ttl``); ``peek`` tells
    whether an acquire of ``cost`` would succeed now. A concurrency limit cannot be part of a
    :class:`~limits_core.Policy`.
    """

    kind: ClassVar[str] = "concurrency"
    _limit: int = field(init=False, repr=False)
    lease_ttl: float = field(init=False)
    namespace: str = field(init=False, repr=False, compare=False)
    _ttl_us: int = field(init=False, repr=False, compare=False)

    def __init__(self, limit: int, lease_ttl: float = 60.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ConfigurationError(f"limit must be an int, got {limit!r}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ConfigurationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit!r}")
        if isinstance(lease_ttl, bool) or not isinstance(lease_ttl, int | float):
            raise ConfigurationError(f"lease_ttl must be a number of seconds, got {lease_ttl!r}")
        ttl_us = round(lease_ttl * 1_000_000) if math.isfinite(lease_ttl) else 0
        if not 1 <= ttl_us <= MAX_PERIOD * 1_000_000:
            raise ConfigurationError(
                f"lease_ttl must be between 1e-06 and {MAX_PERIOD} seconds, got {lease_ttl!r}"
            )
        object.__setattr__(self, "_limit", limit)
        object.__setattr__(self, "lease_ttl", float(lease_ttl))
        object.__setattr__(self, "_ttl_us", ttl_us)
        object.__setattr__(self, "namespace", f"cc:{limit}:{ttl_us}")

    def __repr__(self) -> str:
        return f"Concurrency({self._limit}, lease_ttl={self.lease_ttl!r})"

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def lease_ttl_us(self) -> int:
        return self._ttl_us

    @property
    def max_state_ttl_us(self) -> int:
        return self._ttl_us

    def step(
        self, state: ConcurrencyState | None, now_us: int, cost: int, consume: bool = True
    ) -> StepResult:
        """Peek only: would an acquire of ``cost`` succeed now? ``consume=True`` is refused
        with :class:`~limits_core.ConfigurationError` (leases come from :meth:`acquire`)."""
        if consume:
            raise ConfigurationError(_HIT)
        return self._decide(self._live(state, now_us), now_us, cost), state, 0

    def acquire(
        self, state: ConcurrencyState | None, now_us: int, lease_id: int, cost: int
    ) -> tuple[Decision, ConcurrencyState | None, int]:
        """Take a lease ``lease_id`` of ``cost`` at ``now_us`` if it fits; return
        ``(decision, new_state, expires_at_us)``. A denied acquire changes nothing."""
        live = self._live(state, now_us)
        decision = self._decide(live, now_us, cost)
        if not decision.allowed:
            return decision, state, 0
        new_state = (*live, (now_us + self._ttl_us, lease_id, cost))
        return decision, new_state, max(entry[0] for entry in new_state)

    def release(
        self, state: ConcurrencyState | None, now_us: int, lease_id: int
    ) -> tuple[bool, ConcurrencyState | None, int]:
        """Give back the live lease ``lease_id``; return ``(released, new_state,
        expires_at_us)``, with ``new_state`` ``None`` once no lease is left. Releasing what
        holds nothing (unknown, already released, expired) changes nothing."""
        live = self._live(state, now_us)
        kept = tuple(entry for entry in live if entry[1] != lease_id)
        if len(kept) == len(live):
            return False, state, 0
        if not kept:
            return True, None, 0
        return True, kept, max(entry[0] for entry in kept)

    @staticmethod
    def _live(state: ConcurrencyState | None, now_us: int) -> ConcurrencyState:
        if not state:
            return ()
        return tuple(entry for entry in state if entry[0] > now_us)

    def _decide(self, live: ConcurrencyState, now_us: int, cost: int) -> Decision:
        limit = self._limit
        used = sum(entry[2] for entry in live)
        newest = max((entry[0] for entry in live), default=now_us)
        if cost > limit:
            return decision_from_us(False, limit, limit - used, newest - now_us, NEVER)
        excess = used + cost - limit
        if excess > 0:
            # The request fits once leases holding `excess` cost have expired, earliest first
            # (leases expiring together free their cost together).
            freed, retry_at = 0, now_us
            for expires_at, _, held in sorted(live):
                freed, retry_at = freed + held, expires_at
                if freed >= excess:
                    break
            return decision_from_us(False, limit, limit - used, newest - now_us, retry_at - now_us)
        reset_us = max(newest, now_us + self._ttl_us) - now_us
        return decision_from_us(True, limit, limit - used - cost, reset_us, 0)
