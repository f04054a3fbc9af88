"""In-memory backend: the reference model run directly under a lock.

One :class:`MemoryBackend` serves both :class:`~limits_core.Limiter` and
:class:`~limits_core.AsyncLimiter` (its async methods never yield while holding the lock), and
is shared safely by threads and tasks of one process. One instance is one store, so it takes
no ``prefix``; its state is per process: several processes or hosts need Redis or PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from time import time_ns as _time_ns
from typing import Any, Literal

from limits_core.algorithm import Algorithm
from limits_core.clock import Clock, SystemClock
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError

__all__ = ["MemoryBackend"]

_StoreKey = tuple[str, str]
#: Entries the expiry sweep inspects whenever a new key is stored: more than one, so the sweep
#: outruns the creation of keys.
_SWEEP_PER_NEW_KEY = 2
#: Entries inspected, when the store is full, to find an expired one before evicting.
_SWEEP_WHEN_FULL = 64


class MemoryBackend:
    """Keeps every key's state in a dict of this process.

    Expired state is reclaimed without a background thread, in the spirit of Redis' active
    expiry: the entries sit in a ring, and each time a new key is stored the sweep inspects the
    next two, dropping those that have expired and rotating the others to the back. Only a new
    key grows the store, so only a new key pays for the sweep (updates of existing keys, the
    hot path, pay nothing); the sweep gains on the ring even when every write creates a key,
    and every entry is inspected at least once per ``n`` new keys (``n`` the number of
    entries). Memory thus stays bounded by the live keys plus the keys that expired since the
    last turn of the ring; with no new keys, expired entries wait but the store does not grow.
    :meth:`sweep` reclaims everything expired at once.

    Args:
        max_keys: bound the number of stored keys. When the store is full and a request for a
            new key is admitted, up to 64 entries are inspected to reclaim an expired one; if
            none has expired, ``when_full`` decides.
        when_full: ``"evict"`` (default) drops the entry that has gone longest without
            inspection, which forgets that key's usage (it may then be admitted again early),
            while ``"error"`` raises :class:`~limits_core.BackendError` for the new key and
            keeps every existing key's state.
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
        self._entries: OrderedDict[_StoreKey, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._clock: Clock = clock if clock is not None else SystemClock()
        # The host's clock is read inline on the hot path: a method call costs more than it.
        self._own_clock = clock
        self._max_keys = max_keys
        self._when_full = when_full
        self.evictions = 0
        """How many live keys were evicted because the store was full."""

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryBackend(keys={len(self._entries)}, max_keys={self._max_keys})"

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        if now_us is None:
            clock = self._own_clock
            now_us = _time_ns() // 1000 if clock is None else clock.now_us()
        skey = (algorithm.namespace, key)
        entries = self._entries
        # acquire/release rather than `with`: this is the hot path, and it is measurably faster.
        self._acquire()
        try:
            entry = entries.get(skey)
            decision, state, expires_at = algorithm.step(
                None if entry is None else entry[0], now_us, cost, consume
            )
            if consume and decision.allowed:
                if entry is None:
                    if self._max_keys is not None:
                        self._make_room(now_us)
                    self._sweep(now_us, _SWEEP_PER_NEW_KEY)
                entries[skey] = (state, expires_at)
        finally:
            self._release()
        return decision

    def decide_many(
        self,
        algorithm: Algorithm,
        requests: Sequence[tuple[str, int]],
        now_us: int | None,
        consume: bool,
    ) -> list[Decision]:
        """Decide ``(key, cost)`` requests in order under one acquisition of the lock, at one
        time: each request sees the effect of those before it."""
        if now_us is None:
            clock = self._own_clock
            now_us = _time_ns() // 1000 if clock is None else clock.now_us()
        namespace = algorithm.namespace
        with self._lock:
            return [
                self._step(algorithm, (namespace, key), cost, now_us, consume)
                for key, cost in requests
            ]

    def _step(
        self, algorithm: Algorithm, skey: _StoreKey, cost: int, now_us: int, consume: bool
    ) -> Decision:
        """:meth:`decide` for one request, the lock held: the body :meth:`decide` inlines for
        speed (tests/test_hit_many.py checks that the two stay the same)."""
        entries = self._entries
        entry = entries.get(skey)
        decision, state, expires_at = algorithm.step(
            None if entry is None else entry[0], now_us, cost, consume
        )
        if consume and decision.allowed:
            if entry is None:
                if self._max_keys is not None:
                    self._make_room(now_us)
                self._sweep(now_us, _SWEEP_PER_NEW_KEY)
            entries[skey] = (state, expires_at)
        return decision

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
            now_us = self._clock.now_us()
        skey = (algorithm.namespace, key)
        with self._lock:
            entry = self._entries.get(skey)
            state = None
            if entry is not None:
                state, expires_at = refund(entry[0], now_us, amount)
                if state is None:
                    del self._entries[skey]
                else:
                    self._entries[skey] = (state, expires_at)
            return algorithm.step(state, now_us, 1, False)[0]

    def reset(self, algorithm: Algorithm, key: str) -> None:
        with self._lock:
            self._entries.pop((algorithm.namespace, key), None)

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

    def sweep(self, now_us: int | None = None) -> int:
        """Reclaim every expired entry now; return how many were dropped."""
        if now_us is None:
            now_us = self._clock.now_us()
        with self._lock:
            before = len(self._entries)
            self._sweep(now_us, before)
            return before - len(self._entries)

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._entries.clear()

    def _sweep(self, now_us: int, budget: int) -> None:
        entries = self._entries
        for _ in range(min(budget, len(entries))):
            skey, entry = entries.popitem(last=False)
            if entry[1] > now_us:
                entries[skey] = entry

    def _make_room(self, now_us: int) -> None:
        entries, max_keys = self._entries, self._max_keys
        if max_keys is None or len(entries) < max_keys:
            return
        self._sweep(now_us, _SWEEP_WHEN_FULL)
        if len(entries) < max_keys:
            return
        if self._when_full == "error":
            raise BackendError(
                f"MemoryBackend is full ({self._max_keys} live keys); a new key was refused"
            )
        entries.popitem(last=False)
        self.evictions += 1
