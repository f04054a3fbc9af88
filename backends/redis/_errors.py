"""The one place redis-py exceptions become limits-core exceptions, for both backends."""

from __future__ import annotations

from redis import exceptions as rex

from limits_core.errors import BackendError, BackendUnavailable

__all__ = ["CAUGHT", "NOSCRIPT", "REDIRECTED", "REPLY_ERROR", "TIMEOUT", "translate"]

#: What a backend catches around a driver call; everything else propagates unchanged.
#: (RedisClusterException is not a RedisError.)
CAUGHT: tuple[type[BaseException], ...] = (rex.RedisError, rex.RedisClusterException, OSError)

#: Redis refused to run a script it does not have (``SCRIPT FLUSH``, a restart): nothing ran,
#: so sending the call again, script and all, cannot count anything twice.
NOSCRIPT: type[BaseException] = rex.NoScriptError

#: No reply in time: the command may or may not have run.
TIMEOUT: type[BaseException] = rex.TimeoutError

#: A Redis error reply to one command of a pipeline; the connection stays usable.
REPLY_ERROR: type[BaseException] = rex.ResponseError

#: Cluster replies meaning the command did not run on this node: sent again through the
#: client, which follows the redirection.
REDIRECTED: tuple[type[BaseException], ...] = (rex.MovedError, rex.AskError, rex.TryAgainError)

# redis-py < 5.1 has no AuthorizationError.
_CREDENTIALS = (
    rex.AuthenticationError,
    getattr(rex, "AuthorizationError", rex.AuthenticationError),
)

# Errors meaning the server (or the cluster slot) could not be reached or did not answer.
_UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.SlotNotCoveredError,
    OSError,
)


def translate(exc: BaseException, address: str) -> BackendError:
    """The limits-core exception for a redis-py (or socket) error; ``address`` is already
    free of passwords."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _CREDENTIALS):
        return BackendError(f"Redis at {address} refused the credentials ({detail})")
    if isinstance(exc, rex.TimeoutError):
        return BackendUnavailable(
            f"Redis at {address} did not answer in time ({detail}); the decision may or may "
            "not have been applied and was not retried"
        )
    if isinstance(exc, _UNAVAILABLE) or isinstance(exc.__cause__, _UNAVAILABLE):
        # The second test: RedisCluster wraps "no startup node reachable" in a
        # RedisClusterException caused by the ConnectionError.
        return BackendUnavailable(f"Redis at {address} is unavailable ({detail})")
    return BackendError(f"Redis at {address} failed ({detail})")
