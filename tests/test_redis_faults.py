"""A Redis server that the test starts itself: stopped and restarted mid-run, or frozen so that
a script times out after it was sent. Calls fail with BackendUnavailable during the outage,
work again afterwards, and no hit is ever counted twice."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from algorithms import FixedWindow
from backends.redis import AsyncRedisBackend, RedisBackend
from limits_core import AsyncLimiter, BackendUnavailable, Limiter, Rate
from tests.support.redis_servers import RedisProcess

pytestmark = [pytest.mark.redis, pytest.mark.faults]

LIMIT = 1000
ALGORITHM = FixedWindow(Rate(LIMIT, 3600.0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


def test_restart_keeps_counting_once(server: RedisProcess) -> None:
    limiter = Limiter(ALGORITHM, RedisBackend(server.url, prefix="restart:"))
    assert [limiter.hit("k").remaining for _ in range(5)] == [999, 998, 997, 996, 995]
    server.shutdown_saving()  # the state survives the restart, the script cache does not
    for _ in range(3):
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{server.port}"):
            limiter.hit("k")
    server.start()
    assert [limiter.hit("k").remaining for _ in range(5)] == [994, 993, 992, 991, 990]
    limiter.close()


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
async def test_restart_keeps_counting_once_async(server: RedisProcess, coalesce: bool) -> None:
    backend = AsyncRedisBackend(server.url, prefix="r:", coalesce=coalesce)
    async with AsyncLimiter(ALGORITHM, backend) as limiter:
        assert [(await limiter.hit("k")).remaining for _ in range(3)] == [999, 998, 997]
        server.shutdown_saving()
        with pytest.raises(BackendUnavailable):
            await limiter.hit("k")
        server.start()
        assert [(await limiter.hit("k")).remaining for _ in range(3)] == [996, 995, 994]


@pytest.mark.slow
def test_restart_under_load_counts_nothing_twice(server: RedisProcess) -> None:
    """Threads hit while the server restarts. Every admitted hit is counted once; a call that
    failed may or may not have been counted (its reply was lost), but never twice."""
    limiter = Limiter(ALGORITHM, RedisBackend(server.url, prefix="load:"))
    admitted, failed = [0] * 4, [0] * 4
    stop = threading.Event()

    def run(i: int) -> None:
        while not stop.is_set():
            try:
                admitted[i] += limiter.hit("k").allowed
            except BackendUnavailable:
                failed[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        while sum(admitted) < 50:
            pass
        server.shutdown_saving()
        while sum(failed) < 20:
            pass
        server.start()
        before = sum(admitted)
        while sum(admitted) < before + 50:
            pass
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    counted = LIMIT - 1 - limiter.peek("k").remaining  # a peek reports what one more leaves
    assert sum(admitted) <= counted <= sum(admitted) + sum(failed)
    limiter.close()


def test_a_timeout_is_unavailable_and_never_resent(server: RedisProcess) -> None:
    limiter = Limiter(ALGORITHM, RedisBackend(server.url, prefix="t:", socket_timeout=0.2))
    assert limiter.hit("k").remaining == 999
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with pytest.raises(BackendUnavailable, match="may or may not"):
            limiter.hit("k")
    finally:
        os.kill(server.pid, signal.SIGCONT)
    # The script sent before the timeout ran once when the server resumed and was not resent:
    # two hits counted, so a peek of one more leaves 997.
    assert limiter.peek("k").remaining == 997
    limiter.close()


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
async def test_a_timeout_is_unavailable_and_never_resent_async(
    server: RedisProcess, coalesce: bool
) -> None:
    backend = AsyncRedisBackend(server.url, prefix="t:", socket_timeout=0.2, coalesce=coalesce)
    async with AsyncLimiter(ALGORITHM, backend) as limiter:
        assert (await limiter.hit("k")).remaining == 999
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(BackendUnavailable, match="may or may not"):
                await limiter.hit("k")
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert (await limiter.peek("k")).remaining == 997
