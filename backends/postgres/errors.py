"""Driver errors to limits-core errors, for both PostgreSQL backends, in one place.

- The server could not be reached, refused or dropped the connection, shut down, timed out, or
  had no free pool connection in time: :class:`~limits_core.BackendUnavailable`. A connection
  lost while a decision was in flight leaves its outcome unknown: the backends never retry it
  (a retry could count one request twice), they raise this error instead.
- Any other database or driver error: :class:`~limits_core.BackendError`.

Messages name the server by its DSN with the password masked, and any password is scrubbed
from the driver's own message too.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from limits_core.errors import BackendError, BackendUnavailable, LimitsCoreError

__all__ = [
    "MISSING_SCHEMA_STATES",
    "Redactor",
    "is_statement_error",
    "missing_driver",
    "translate_asyncpg",
    "translate_psycopg",
]

#: SQLSTATE classes meaning the server cannot serve us now: connection exceptions (08),
#: authorization (28), unknown database (3D), insufficient resources (53), operator
#: intervention such as a shutdown, a terminated backend or a cancelled statement (57), system
#: errors (58).
_UNAVAILABLE_CLASSES = frozenset({"08", "28", "3D", "53", "57", "58"})
#: SQLSTATEs meaning our table or functions are missing (dropped after they were created).
MISSING_SCHEMA_STATES = frozenset({"42P01", "42883", "3F000"})

_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_MASK = "***"


def missing_driver(package: str) -> LimitsCoreError:
    """The error raised when a backend's driver is not installed."""
    from limits_core.errors import ConfigurationError

    return ConfigurationError(
        f"the PostgreSQL backend needs {package}: pip install 'limits-core[postgres]'"
    )


class Redactor:
    """Shows a DSN with its password masked, and scrubs that password from any message."""

    __slots__ = ("_secrets", "shown")

    def __init__(self, dsn: str | None) -> None:
        self._secrets: list[str] = []
        self.shown = "the given pool" if dsn is None else self._mask(dsn)

    def _mask(self, dsn: str) -> str:
        if "://" not in dsn:  # key=value conninfo
            self._secrets += [m.group(2).strip("'") for m in _KV_PASSWORD.finditer(dsn)]
            return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, dsn)
        try:
            parts = urlsplit(dsn)
            password = parts.password
        except ValueError:
            return "a malformed DSN"
        netloc = parts.netloc
        if password is not None:
            self._secrets.append(password)
            userinfo, _, hostinfo = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{_MASK}@{hostinfo}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            self._secrets += [v for k, v in pairs if k.lower() == "password" and v]
            query = urlencode(
                [(k, _MASK if k.lower() == "password" else v) for k, v in pairs], safe="*"
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def scrub(self, message: str) -> str:
        """``message`` with every known password replaced by ``***``."""
        for secret in self._secrets:
            if secret:
                message = message.replace(secret, _MASK)
        return message

    def describe(self, exc: BaseException) -> str:
        text = self.scrub(str(exc)) or "no detail"
        return f"PostgreSQL ({self.shown}): {type(exc).__name__}: {text}"


def is_statement_error(exc: BaseException) -> bool:
    """True when the server reported an error for one statement and the session goes on."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] not in _UNAVAILABLE_CLASSES


def _by_sqlstate(sqlstate: str, exc: BaseException, redactor: Redactor) -> LimitsCoreError:
    if sqlstate[:2] in _UNAVAILABLE_CLASSES:
        return BackendUnavailable(redactor.describe(exc))
    if sqlstate in MISSING_SCHEMA_STATES:
        return BackendError(
            redactor.describe(exc) + " (the limits-core table or functions are missing; "
            "create them with `limits-core db init` or let the backend create them)"
        )
    return BackendError(redactor.describe(exc))


def translate_asyncpg(exc: BaseException, redactor: Redactor) -> LimitsCoreError:
    """Translate an exception raised by asyncpg (or the socket under it)."""
    if isinstance(exc, LimitsCoreError):
        return exc
    import asyncpg

    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
        return _by_sqlstate(sqlstate, exc, redactor)
    if isinstance(exc, asyncpg.DataError):
        return BackendError(redactor.describe(exc))
    if isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    ):
        # Refused or reset sockets, timeouts, "connection is closed", a pool being closed, and
        # a protocol state broken by a connection lost mid-operation: the outcome is unknown.
        return BackendUnavailable(redactor.describe(exc))
    return BackendError(redactor.describe(exc))


def translate_psycopg(exc: BaseException, redactor: Redactor) -> LimitsCoreError:
    """Translate an exception raised by psycopg or psycopg_pool."""
    if isinstance(exc, LimitsCoreError):
        return exc
    import psycopg
    import psycopg_pool

    if isinstance(exc, psycopg_pool.PoolClosed):
        return BackendError(redactor.describe(exc))
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.Error) and isinstance(sqlstate, str):
        return _by_sqlstate(sqlstate, exc, redactor)
    if isinstance(exc, OSError | TimeoutError | psycopg.OperationalError | psycopg.InterfaceError):
        # Refused connections, a connection lost mid-statement, no pool connection in time
        # (PoolTimeout), "the connection is closed".
        return BackendUnavailable(redactor.describe(exc))
    return BackendError(redactor.describe(exc))
