"""Work run in child processes by the Redis concurrency tests (importable under ``spawn``)."""

from __future__ import annotations

import threading

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis import RedisBackend
from limits_core import Limiter
from limits_core.algorithm import Algorithm

#: Long periods: on the server's clock nothing refills or expires during a test.
HOT_ALGORITHMS = {
    "fixed_window": lambda: FixedWindow("150/day"),
    "sliding_log": lambda: SlidingLog("150/day"),
    "token_bucket": lambda: TokenBucket("150/day"),
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
