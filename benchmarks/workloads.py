"""The workloads every benchmark runs: a hot key or 10,000 keys, on the allow or the deny path.

- allow: the limit is far above what a run can send, so every request is admitted;
- deny: the limit is 1 per hour and every key has had its one request, so every request is
  denied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
        """On the deny path, spend every key's single request before measuring."""
        if self.path == "deny":
            for key in self.key_names():
                hit(key)


WORKLOADS = [Workload(k, p) for k in ("hot", "10k") for p in ("allow", "deny")]
