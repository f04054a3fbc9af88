"""What the coalescing backends report about their batches (``backend.stats``).

The asyncio Redis and PostgreSQL backends gather concurrent decisions into batches; both count
them with one :class:`BatchRecorder` and report a :class:`CoalescingStats`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["BatchRecorder", "CoalescingStats"]

#: Latencies kept for the percentiles: the most recent batches only, in bounded memory.
SAMPLES = 1024


@dataclass(frozen=True, slots=True)
class CoalescingStats:
    """What coalescing did so far: batch sizes, and latencies (seconds) over the last 1,024
    batches. ``queue_wait`` runs from a batch's first request to its sending (mostly waiting
    for a free connection), ``latency`` to its reply: the wait of the batch's oldest request.
    All zero when coalescing is off."""

    batches: int = 0
    decisions: int = 0
    max_batch_size: int = 0
    mean_batch_size: float = 0.0
    queue_wait_p50: float = 0.0
    queue_wait_p99: float = 0.0
    latency_p50: float = 0.0
    latency_p99: float = 0.0


def _percentile(values: deque[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class BatchRecorder:
    """Counts batches as they complete; :meth:`snapshot` gives the :class:`CoalescingStats`."""

    __slots__ = ("_batches", "_decisions", "_largest", "_latencies", "_waits")

    def __init__(self) -> None:
        self._batches = self._decisions = self._largest = 0
        self._waits: deque[float] = deque(maxlen=SAMPLES)
        self._latencies: deque[float] = deque(maxlen=SAMPLES)

    def record(self, size: int, wait: float, latency: float) -> None:
        """One batch of ``size`` decisions, sent ``wait`` and answered ``latency`` seconds
        after its first request."""
        self._batches += 1
        self._decisions += size
        if size > self._largest:
            self._largest = size
        self._waits.append(wait)
        self._latencies.append(latency)

    def snapshot(self) -> CoalescingStats:
        batches = self._batches
        return CoalescingStats(
            batches=batches,
            decisions=self._decisions,
            max_batch_size=self._largest,
            mean_batch_size=self._decisions / batches if batches else 0.0,
            queue_wait_p50=_percentile(self._waits, 0.5),
            queue_wait_p99=_percentile(self._waits, 0.99),
            latency_p50=_percentile(self._latencies, 0.5),
            latency_p99=_percentile(self._latencies, 0.99),
        )
