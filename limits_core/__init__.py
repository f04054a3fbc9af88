"""limits-core: rate limiting that is correct under concurrency.

An algorithm (``algorithms``) is a pure state machine; a backend (``backends``) makes it atomic
on a store; a :class:`Limiter` or :class:`AsyncLimiter` applies it to keys::

    from limits_core import Limiter
    from algorithms import FixedWindow
    from backends.memory import MemoryBackend

    limiter = Limiter(FixedWindow("100/minute"), MemoryBackend())
    decision = limiter.hit("user:luis:openai")
"""

from limits_core import keys
from limits_core.algorithm import Algorithm
from limits_core.backend import AsyncBackend, AsyncLeaseBackend, Backend, LeaseBackend
from limits_core.clock import Clock, ManualClock, SystemClock
from limits_core.decision import Decision
from limits_core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    LimitsCoreError,
    RateLimitExceeded,
)
from limits_core.lease import Lease, LeaseAlgorithm
from limits_core.limiter import AsyncLimiter, Limiter
from limits_core.policy import Policy
from limits_core.rate import Rate

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "AsyncBackend",
    "AsyncLeaseBackend",
    "AsyncLimiter",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Clock",
    "ConfigurationError",
    "Decision",
    "Lease",
    "LeaseAlgorithm",
    "LeaseBackend",
    "Limiter",
    "LimitsCoreError",
    "ManualClock",
    "Policy",
    "Rate",
    "RateLimitExceeded",
    "SystemClock",
    "keys",
]
