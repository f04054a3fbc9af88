"""Process entry points for the PostgreSQL multi-process tests (importable under spawn)."""

from __future__ import annotations

import threading
from typing import Any

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.postgres import PostgresBackend
from limits_core import Limiter
from limits_core.algorithm import Algorithm


def hammer_algorithm(name: str, limit: int) -> Algorithm:
    """``limit`` per day: no refill or window end can happen during a test."""
    kinds: dict[str, Any] = {
        "fixed_window": FixedWindow,
        "sliding_log": SlidingLog,
        "token_bucket": TokenBucket,
        "sliding_window_counter": SlidingWindowCounter,
        "gcra": GCRA,
        "leaky_bucket": LeakyBucket,
    }
    algorithm: Algorithm = kinds[name](f"{limit}/day")
    return algorithm


def hammer(
    dsn: str,
    table: str,
    name: str,
    limit: int,
    key: str,
    threads: int,
    hits: int,
    barrier: Any,
    results: Any,
) -> None:
    """Hit ``key`` ``hits`` times from each of ``threads`` threads sharing one backend, all
    released at once with the other processes; put the number admitted on ``results``."""
    backend = PostgresBackend(dsn, table=table, pool_size=threads)
    limiter = Limiter(hammer_algorithm(name, limit), backend)
    limiter.peek("warm-up")  # connect and check the schema before the race
    admitted = [0] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(hits):
                admitted[i] += limiter.hit(key).allowed
        except BaseException as exc:  # reported to the parent, which fails the test
            errors.append(exc)

    barrier.wait()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    backend.close()
    results.put(repr(errors[0]) if errors else sum(admitted))


def create_schema(dsn: str, table: str, barrier: Any, results: Any) -> None:
    """Create the schema at the same moment as the other processes, then decide once."""
    backend = PostgresBackend(dsn, table=table, pool_size=1)
    try:
        barrier.wait()
        backend.create_schema()
        decision = Limiter(FixedWindow("1/day"), backend).hit("created")
        results.put(("ok", decision.allowed))
    except BaseException as exc:
        results.put(("error", repr(exc)))
    finally:
        backend.close()
