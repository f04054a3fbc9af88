"""Rate-limiting algorithms as pure state machines over integer microseconds.

Each algorithm is a small frozen dataclass whose ``step(state, now_us, cost)`` is the
reference model every backend must agree with.
"""

from collections.abc import Callable

from algorithms.concurrency import Concurrency
from algorithms.fixed_window import FixedWindow
from algorithms.gcra import GCRA
from algorithms.leaky_bucket import LeakyBucket
from algorithms.sliding_log import SlidingLog
from algorithms.sliding_window_counter import SlidingWindowCounter
from algorithms.token_bucket import TokenBucket
from limits_core.algorithm import Algorithm
from limits_core.rate import Rate

__all__ = [
    "ALGORITHMS",
    "GCRA",
    "Algorithm",
    "Concurrency",
    "FixedWindow",
    "LeakyBucket",
    "SlidingLog",
    "SlidingWindowCounter",
    "TokenBucket",
]

#: Every algorithm by its ``kind``, as a constructor taking a rate (the command line's
#: ``--algorithm NAME``). A new algorithm adds one line here; its other parameters take their
#: defaults when built from a rate alone. :class:`Concurrency` is not here: it limits work in
#: flight rather than a rate, and takes leases (``acquire``/``release``) instead of hits.
ALGORITHMS: dict[str, Callable[[Rate | str], Algorithm]] = {
    "fixed_window": FixedWindow,
    "sliding_log": SlidingLog,
    "token_bucket": TokenBucket,
    "sliding_window_counter": SlidingWindowCounter,
    "gcra": GCRA,
    "leaky_bucket": LeakyBucket,
}
