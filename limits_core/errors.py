"""The exceptions limits-core raises.

Every exception derives from one root, so ``except LimitsCoreError`` catches them all::

    LimitsCoreError
    ├── ConfigurationError (also a ValueError)   bad rate, key, cost, option or missing extra
    ├── BackendError                              the store answered with an error
    │   └── BackendUnavailable                    the store could not be reached in time, or
    │                                             the outcome of a decision is unknown
    └── RateLimitExceeded                         raised on request; carries the Decision

Driver exceptions (redis-py, asyncpg, psycopg) never escape a backend: each backend translates
them in one place into ``BackendError`` or ``BackendUnavailable``, with any password masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limits_core.decision import Decision

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ConfigurationError",
    "LimitsCoreError",
    "RateLimitExceeded",
]


class LimitsCoreError(Exception):
    """Root of every exception raised by limits-core."""


class ConfigurationError(LimitsCoreError, ValueError):
    """A rate, key, cost or option is invalid, or an optional dependency is missing.

    Raised before any state is touched.
    """


class BackendError(LimitsCoreError):
    """The store failed to make a decision (a server error, a script error, a full store)."""


class BackendUnavailable(BackendError):
    """The store could not be reached, timed out, or lost the connection mid-decision.

    When a request was sent but no reply came back, the decision may or may not have been
    applied; limits-core never retries such a request, because a retry could count a hit twice.
    """


class RateLimitExceeded(LimitsCoreError):
    """A request was denied; raised by callers who prefer exceptions to checking ``allowed``."""

    def __init__(self, decision: Decision, message: str | None = None) -> None:
        self.decision = decision
        if message is None:
            message = f"rate limit exceeded; retry after {decision.retry_after:.3f}s"
        super().__init__(message)
