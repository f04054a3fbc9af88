"""Work run in child processes by the Redis concurrency tests (importable under ``spawn``)."""

from __future__ import annotations

import threading

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.redis import RedisBackend
from limits_core import Limiter, Policy
from limits_core.algorithm import Algorithm

#: Long periods: on the server's clock nothing refills or expires during a test.
HOT_ALGORITHMS = {
    "fixed_window": lambda: FixedWindow("150/day"),
    "sliding_log": lambda: SlidingLog("150/day"),
    "token_bucket": lambda: TokenBucket("150/day"),
    "sliding_window_counter": lambda: SlidingWindowCounter("150/day"),
    "gcra": lambda: GCRA("150/day"),
    "leaky_bucket": lambda: LeakyBucket("150/day"),
    "policy": lambda: Policy(SlidingLog("400/day"), FixedWindow("150/day"), TokenBucket("300/day")),
}


def hot_algorithm(name: str) -> Algorithm:
    algorithm: Algorithm = HOT_ALGORITHMS[name]()
    return algorithm


def hammer(url: str, prefix: str, name: str, threads: int, per_thread: int) -> int:
    """Hit one key from ``threads`` threads, ``per_thread`` times each; return the admitted."""
    limiter = Limiter(hot_algorithm(name), RedisBackend(url, prefix=prefix))
    barrier = threading.Barrier(threads)
    admitted = [0] * threads

    def run(i: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            admitted[i] += limiter.hit("{hot}:key").allowed

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    limiter.close()
    return sum(admitted)
