"""In-memory backend: the reference model run directly under a lock.

(For the built-in algorithms, a fused form of their ``step`` that does the same in one frame:
:mod:`backends._fused`.)

One :class:`MemoryBackend` serves both :class:`~limits_core.Limiter` and
:class:`~limits_core.AsyncLimiter` (its async methods never yield while holding the lock), and
is shared safely by threads and tasks of one process. One instance is one store, so it takes
no ``prefix``; its state is per process: several processes or hosts need Redis or PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from time import time_ns as _time_ns
from typing import Any, Literal, cast

from backends._fused import Decide, fused_decider
from backends._table import KeyTable
from limits_core.algorithm import Algorithm
from limits_core.clock import Clock, SystemClock
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError
from limits_core.lease import LeaseAlgorithm

__all__ = ["MemoryBackend"]

#: Entries inspected, when the store is full, to find an expired one before evicting.
_SWEEP_WHEN_FULL = 64


class MemoryBackend:
    """Keeps every key's state in dicts of this process, one per algorithm.

    Expired state is reclaimed without a background thread, in the spirit of Redis' active
    expiry: each algorithm's entries sit in a ring, and each time a new key is stored the sweep
    inspects the next two entries of that ring, dropping those that have expired and rotating
    the others to the back. Only a new key grows the store, so only a new key pays for the
    sweep (updates of existing keys, the hot path, pay nothing); the sweep gains on the ring
    even when every write creates a key, and every entry is inspected at least once per ``n``
    new keys of its algorithm (``n`` the number of its entries). Memory thus stays bounded by
    the live keys plus the keys that expired since the last turn of their ring; with no new
    keys, expired entries wait but the store does not grow. :meth:`sweep` reclaims everything
    expired at once.

    Args:
        max_keys: bound the number of stored keys, all algorithms together. When the store is
            full and a request for a new key is admitted, up to 64 entries are inspected
            (those of the key's algorithm first) to reclaim an expired one; if none has
            expired, ``when_full`` decides.
        when_full: ``"evict"`` (default) drops the entry of the key's algorithm that has gone
            longest without inspection (another algorithm's if it has none), which forgets
            that key's usage (it may then be admitted again early), while ``"error"`` raises
            :class:`~limits_core.BackendError` for the new key and keeps every existing key's
            state.
        clock: the time used when a limiter has no clock of its own; the host's clock by
            default. Limiters sharing one backend should share one clock, since expiry is
            measured on the time of the calls.
    """

    def __init__(
        self,
        *,
        max_keys: int | None = None,
        when_full: Literal["evict", "error"] = "evict",
        clock: Clock | None = None,
    ) -> None:
        if max_keys is not None and (
            isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1
        ):
            raise ConfigurationError(f"max_keys must be a positive int, got {max_keys!r}")
        if when_full not in ("evict", "error"):
            raise ConfigurationError(f"when_full must be 'evict' or 'error', got {when_full!r}")
        #: namespace -> that algorithm's table. Keys are the user's strings as they are: one
        #: dict per algorithm costs less per decision than a (namespace, key) tuple per key.
        self._tables: dict[str, KeyTable] = {}
        self._deciders: dict[str, Decide] = {}
        # Reentrant, so that decide_many can hold it across the decisions of a batch.
        self._lock = threading.RLock()
        self._clock: Clock = clock if clock is not None else SystemClock()
        # The host's clock is read inline on the hot path: a method call costs more than it.
        self._own_clock = clock
        self._max_keys = max_keys
        self._when_full = when_full
        self.evictions = 0
        """How many live keys were evicted because the store was full."""

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())

    def __repr__(self) -> str:
        return f"MemoryBackend(keys={len(self)}, max_keys={self._max_keys})"

    def bind(self, algorithm: Algorithm) -> Decide:
        """:meth:`decide` for ``algorithm`` alone: ``decide(key, cost, now_us, consume)``.

        What :class:`~limits_core.Limiter` calls on every decision: the algorithm's table and
        step are looked up once, here, instead of on each call. A subclass that overrides
        :meth:`decide` gets its ``decide`` called.
        """
        if type(self).decide is not MemoryBackend.decide:
            return partial(self.decide, algorithm)
        return self._bind(algorithm)

    def _bind(self, algorithm: Algorithm) -> Decide:
        namespace = algorithm.namespace
        bound = self._deciders.get(namespace)
        if bound is not None:
            return bound
        table = self._table(namespace)
        step, get, clock = algorithm.step, table.entries.get, self._own_clock
        lock = self._lock
        acquire, release = lock.acquire, lock.release
        add = table.add if self._max_keys is None else partial(self._add_bounded, table)
        fused = fused_decider(algorithm, get, add, (acquire, release), clock)
        if fused is not None:
            self._deciders[namespace] = fused
            return fused

        def decide(key: str, cost: int, now_us: int | None, consume: bool) -> Decision:
            if now_us is None:
                now_us = _time_ns() // 1000 if clock is None else clock.now_us()
            # acquire/release rather than `with`: this is the hot path, and it is faster.
            acquire()
            try:
                entry = get(key)
                decision, state, expires_at = step(
                    None if entry is None else entry[0], now_us, cost, consume
                )
                if consume and decision.allowed:
                    if entry is None:
                        add(key, state, expires_at, now_us)
                    else:
                        entry[0] = state
                        entry[1] = expires_at
            finally:
                release()
            return decision

        # The same namespace means the same algorithm and parameters: one decider serves all.
        self._deciders[namespace] = decide
        return decide

    def abind(
        self, algorithm: Algorithm
    ) -> Callable[[str, int, int | None, bool], Awaitable[Decision]]:
        """The asyncio twin of :meth:`bind`: the decision is made without yielding."""
        if type(self).adecide is not MemoryBackend.adecide:
            return partial(self.adecide, algorithm)
        decide = self.bind(algorithm)

        async def adecide(key: str, cost: int, now_us: int | None, consume: bool) -> Decision:
            return decide(key, cost, now_us, consume)

        return adecide

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        decide = self._deciders.get(algorithm.namespace) or self._bind(algorithm)
        return decide(key, cost, now_us, consume)

    def decide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order under one acquisition of the lock, at one
        time: each request sees the effect of those before it."""
        decide = self.bind(algorithm)
        if now_us is None:
            now_us = self._now_us()
        with self._lock:
            return [decide(key, cost, now_us, consume) for key, cost in requests]

    async def adecide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        return self.decide_many(algorithm, requests, now_us, consume)

    def refund(self, algorithm: Algorithm, key: str, amount: int, now_us: int | None) -> Decision:
        """Give ``amount`` back to ``key`` (see :meth:`Limiter.refund
        <limits_core.Limiter.refund>`); a key with no state stays without."""
        refund = getattr(algorithm, "refund", None)
        if refund is None:
            raise ConfigurationError(f"{algorithm!r} cannot give back cost: it has no refund()")
        if now_us is None:
            now_us = self._now_us()
        entries = self._table(algorithm.namespace).entries
        with self._lock:
            entry = entries.get(key)
            state = None
            if entry is not None:
                state, expires_at = refund(entry[0], now_us, amount)
                if state is None:
                    del entries[key]
                else:
                    entry[0] = state
                    entry[1] = expires_at
            return algorithm.step(state, now_us, 1, False)[0]

    def reset(self, algorithm: Algorithm, key: str) -> None:
        table = self._tables.get(algorithm.namespace)
        if table is not None:
            with self._lock:
                table.entries.pop(key, None)

    def close(self) -> None:
        """Nothing to release; the state stays until the backend is garbage-collected."""

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        return self.decide(algorithm, key, cost, now_us, consume)

    async def arefund(
        self, algorithm: Algorithm, key: str, amount: int, now_us: int | None
    ) -> Decision:
        return self.refund(algorithm, key, amount, now_us)

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        self.reset(algorithm, key)

    async def aclose(self) -> None:
        self.close()

    def acquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        lease_algorithm = _lease_algorithm(algorithm)
        if now_us is None:
            now_us = self._now_us()
        table = self._table(algorithm.namespace)
        with self._lock:
            entry = table.entries.get(key)
            decision, state, expires_at = lease_algorithm.acquire(
                None if entry is None else entry[0], now_us, lease_id, cost
            )
            if decision.allowed:
                if entry is None:
                    self._add_bounded(table, key, state, expires_at, now_us)
                else:
                    entry[0] = state
                    entry[1] = expires_at
        return decision

    def release(self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None) -> bool:
        lease_algorithm = _lease_algorithm(algorithm)
        if now_us is None:
            now_us = self._now_us()
        entries = self._table(algorithm.namespace).entries
        with self._lock:
            entry = entries.get(key)
            if entry is None:
                return False
            released, state, expires_at = lease_algorithm.release(entry[0], now_us, lease_id)
            if released:
                if state is None:
                    del entries[key]
                else:
                    entry[0] = state
                    entry[1] = expires_at
        return released

    async def aacquire(
        self, algorithm: Algorithm, key: str, lease_id: int, cost: int, now_us: int | None
    ) -> Decision:
        return self.acquire(algorithm, key, lease_id, cost, now_us)

    async def arelease(
        self, algorithm: Algorithm, key: str, lease_id: int, now_us: int | None
    ) -> bool:
        return self.release(algorithm, key, lease_id, now_us)

    def sweep(self, now_us: int | None = None) -> int:
        """Reclaim every expired entry now; return how many were dropped."""
        if now_us is None:
            now_us = self._now_us()
        dropped = 0
        with self._lock:
            for table in self._tables.values():
                before = len(table)
                table.sweep(now_us, len(table.ring))
                dropped += before - len(table)
        return dropped

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            for table in self._tables.values():
                table.clear()

    def _now_us(self) -> int:
        return self._clock.now_us()

    def _table(self, namespace: str) -> KeyTable:
        table = self._tables.get(namespace)
        if table is None:
            with self._lock:
                table = self._tables.setdefault(namespace, KeyTable())
        return table

    def _add_bounded(
        self, table: KeyTable, key: str, state: Any, expires_at: int, now_us: int
    ) -> None:
        """``table.add``, the lock held, after making room if the store is full (or raising
        when it cannot)."""
        if self._max_keys is not None:
            self._make_room(table, now_us)
        table.add(key, state, expires_at, now_us)

    def _make_room(self, table: KeyTable, now_us: int) -> None:
        max_keys = self._max_keys
        if max_keys is None or len(self) < max_keys:
            return
        budget = _SWEEP_WHEN_FULL
        # The table that grows first: in the steady state, its own expired keys make room.
        for other in (table, *(t for t in self._tables.values() if t is not table)):
            inspected = min(budget, len(other.ring))
            other.sweep(now_us, inspected)
            budget -= inspected
            if len(self) < max_keys:
                return
            if not budget:
                break
        if self._when_full == "error":
            raise BackendError(
                f"MemoryBackend is full ({self._max_keys} live keys); a new key was refused"
            )
        for victim in (table, *self._tables.values()):
            if victim.evict_oldest():
                self.evictions += 1
                return


def _lease_algorithm(algorithm: Algorithm) -> LeaseAlgorithm:
    # Not isinstance(algorithm, LeaseAlgorithm): a runtime protocol check costs more than
    # the whole operation.
    if not callable(getattr(algorithm, "release", None)):
        raise ConfigurationError(f"{algorithm!r} holds no leases")
    return cast(LeaseAlgorithm, algorithm)
