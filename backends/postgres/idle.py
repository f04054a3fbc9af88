"""The connections a synchronous backend keeps at hand between decisions, on top of its pool."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["IdleConnections"]


class IdleConnections:
    """A stack of idle connections taken from a psycopg_pool pool and kept out of it.

    Why: the pool's ``getconn`` and ``putconn`` take its lock, log, keep statistics and check
    the connection on every call, a good share of a decision's client time; a list's ``pop``
    and ``append`` are atomic and need no lock. The pool still opens, counts, checks and
    replaces the connections, and bounds the wait when all of them are busy: a connection goes
    back to it when it is not idle (broken, closed, in a transaction), when some thread waits
    for the pool (so that no thread waits while a connection sits here), and on :meth:`drain`.
    """

    __slots__ = ("_closed", "_idle", "_lock", "_pool", "_stack", "_waiting")

    def __init__(self, pool: Any) -> None:
        from psycopg.pq import TransactionStatus

        self._pool = pool
        self._idle = TransactionStatus.IDLE
        self._stack: list[Any] = []
        self._waiting = 0
        self._lock = threading.Lock()
        self._closed = False

    def take(self, timeout: float) -> Any:
        """An idle connection, from the stack or else from the pool (which waits at most
        ``timeout`` seconds, then raises ``PoolTimeout``). Hand it back with :meth:`give`, or
        to the pool itself after an error."""
        try:
            return self._stack.pop()
        except IndexError:
            pass
        with self._lock:
            self._waiting += 1
        try:
            # Look again now that a thread giving a connection back sees this one waiting:
            # a connection pushed before it looked is found here, one pushed after goes to
            # the pool, where getconn gets it.
            try:
                return self._stack.pop()
            except IndexError:
                return self._pool.getconn(timeout)
        finally:
            with self._lock:
                self._waiting -= 1

    def give(self, connection: Any) -> None:
        """Keep ``connection`` for the next :meth:`take`, or return it to the pool when it is
        no longer idle or some thread waits for the pool."""
        if self._closed or connection.pgconn.transaction_status != self._idle:
            self._pool.putconn(connection)
            return
        self._stack.append(connection)
        if self._closed:  # closed meanwhile: drain() may have run before the append
            self.drain()
        elif self._waiting:
            try:
                connection = self._stack.pop()
            except IndexError:  # taken meanwhile: its taker gives it back later
                return
            self._pool.putconn(connection)

    def drain(self) -> None:
        """Return every kept connection to the pool."""
        while True:
            try:
                connection = self._stack.pop()
            except IndexError:
                return
            self._pool.putconn(connection)

    def close(self) -> None:
        """Return every kept connection to the pool, and from now on every given one."""
        self._closed = True
        self.drain()
