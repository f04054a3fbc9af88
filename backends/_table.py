"""One algorithm's keys in the in-memory backend, with the ring its expiry sweep walks.

``entries`` maps each key to its entry, ``[state, expires_at_us, key]``: a list, so that a
decision updates it in place, which costs a fraction of a dict store. ``ring`` holds the same
entries, oldest inspection first. A key deleted (a reset, a refund that leaves nothing) leaves
its entry in the ring, where the sweep finds it no longer in ``entries`` and drops it; a key
stored again gets a new entry, so an old one is recognised by identity.

A plain dict and a deque, rather than an ``OrderedDict``: storing a new key and inspecting
the front of the ring are the costs of every new key, and they are several times cheaper.
Stale entries are dropped when the sweep reaches them, so the ring holds the live keys plus at
most the keys deleted since the sweep last went past them.

Not thread-safe by itself: :class:`~backends.memory.MemoryBackend` holds its lock around
every use.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["SWEEP_PER_NEW_KEY", "Entry", "KeyTable"]

#: ``[state, expires_at_us, key]``
Entry = list[Any]
#: Entries the expiry sweep inspects whenever a new key is stored: more than one, so the sweep
#: outruns the creation of keys.
SWEEP_PER_NEW_KEY = 2


class KeyTable:
    """The keys of one algorithm, and the ring of their entries."""

    __slots__ = ("entries", "ring")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.ring: deque[Entry] = deque()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: str, state: Any, expires_at: int, now_us: int) -> None:
        """Store a key that has no entry, at the back of the ring, after sweeping the front
        of the ring a little (``SWEEP_PER_NEW_KEY`` entries)."""
        if self.ring:
            self.sweep(now_us, SWEEP_PER_NEW_KEY)
        entry = [state, expires_at, key]
        self.entries[key] = entry
        self.ring.append(entry)

    def sweep(self, now_us: int, budget: int) -> None:
        """Inspect up to ``budget`` entries from the front of the ring: drop those expired at
        ``now_us`` and those of deleted keys, rotate the others to the back."""
        entries, ring = self.entries, self.ring
        # A while loop rather than range(min(...)): this runs for every new key.
        while budget and ring:
            budget -= 1
            entry = ring.popleft()
            key = entry[2]
            if entries.get(key) is not entry:
                continue  # deleted since, or stored again with a new entry
            if entry[1] > now_us:
                ring.append(entry)
            else:
                del entries[key]

    def evict_oldest(self) -> bool:
        """Drop the live entry that has gone longest without inspection; False if none."""
        entries, ring = self.entries, self.ring
        while ring:
            entry = ring.popleft()
            if entries.get(entry[2]) is entry:
                del entries[entry[2]]
                return True
        return False

    def clear(self) -> None:
        self.entries.clear()
        self.ring.clear()
