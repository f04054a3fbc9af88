"""Rate-limiting algorithms as pure state machines over integer microseconds.

Each algorithm is a small frozen dataclass whose ``step(state, now_us, cost)`` is the
reference model every backend must agree with.
"""

from algorithms.fixed_window import FixedWindow
from algorithms.gcra import GCRA
from algorithms.leaky_bucket import LeakyBucket
from algorithms.sliding_log import SlidingLog
from algorithms.sliding_window_counter import SlidingWindowCounter
from algorithms.token_bucket import TokenBucket
from limits_core.algorithm import Algorithm

__all__ = [
    "GCRA",
    "Algorithm",
    "FixedWindow",
    "LeakyBucket",
    "SlidingLog",
    "SlidingWindowCounter",
    "TokenBucket",
]
