"""The workloads every benchmark runs: a hot key or 10,000 keys, on the allow or the deny path.

- allow: the limit is far above what a run can send, so every request is admitted;
- deny: the limit is 1 per hour and every key has had its one request, so every request is
  denied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ALLOW_RATE = (1_000_000, 1)  # (limit, seconds)
DENY_RATE = (1, 3600)
MANY_KEYS = 10_000


@dataclass(frozen=True)
class Workload:
    keys: str  # "hot" or "10k"
    path: str  # "allow" or "deny"

    @property
    def id(self) -> str:
        return f"{self.keys}-{self.path}"

    @property
    def rate(self) -> tuple[int, int]:
        return ALLOW_RATE if self.path == "allow" else DENY_RATE

    def key_names(self) -> list[str]:
        if self.keys == "hot":
            return ["bench:hot"]
        return [f"bench:user:{i}" for i in range(MANY_KEYS)]

    def key_cycle(self) -> Iterator[str]:
        return itertools.cycle(self.key_names())

    def prime(self, hit: Callable[[str], object]) -> None:
        """Hit every key once before measuring: on the deny path this spends each key's single
        request, on the allow path it stores every key, so that the timed calls are the steady
        state of keys already known (not their first insertion)."""
        for key in self.key_names():
            hit(key)


WORKLOADS = [Workload(k, p) for k in ("hot", "10k") for p in ("allow", "deny")]


#: The in-memory contenders: ours, and ``limits`` 5.x ``MemoryStorage`` strategies.
OURS = (
    "FixedWindow",
    "SlidingLog",
    "TokenBucket",
    "SlidingWindowCounter",
    "GCRA",
    "LeakyBucket",
)
PEERS = ("FixedWindow", "MovingWindow")
MEMORY_CONTENDERS = [f"limits-core {name}" for name in OURS] + [f"limits {name}" for name in PEERS]


def memory_contender(
    name: str, workload: Workload
) -> tuple[Callable[[str], object], Callable[[], None]]:
    """``(hit(key), close())`` for one of :data:`MEMORY_CONTENDERS` on ``workload``'s rate;
    a peer raises ImportError when ``limits`` is not installed."""
    import algorithms
    from backends.memory import MemoryBackend
    from limits_core import Limiter, Rate

    limit, seconds = workload.rate
    library, kind = name.split()
    if library == "limits-core":
        limiter = Limiter(getattr(algorithms, kind)(Rate(limit, seconds)), MemoryBackend())
        return limiter.hit, limiter.close
    import limits
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    storage = MemoryStorage()
    strategy: Any = (FixedWindowRateLimiter if kind == "FixedWindow" else MovingWindowRateLimiter)(
        storage
    )
    item = limits.parse(f"{limit} per {seconds} second")
    # Its expiry timer thread would go on running into the next contender's timing.
    return (lambda key: strategy.hit(item, key)), storage.timer.cancel
