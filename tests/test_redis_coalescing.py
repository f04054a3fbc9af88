"""Redis batches: ``AsyncRedisBackend``'s coalescing and ``decide_many`` in pipelines.

Concurrent decisions go out together, capped per batch, grouped per cluster node; a lost
script cache costs a resend of only the calls Redis refused; a connection dropped mid-batch
fails every call whose outcome is unknown, and never counts a hit twice; a cancelled caller
does not break its batch for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis import AsyncRedisBackend, RedisBackend
from backends.redis._batch import SCRIPT_BATCH
from backends.redis._plan import redis_key
from backends.redis._scripts import batch_script
from limits_core import (
    AsyncLimiter,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    Decision,
    Limiter,
    ManualClock,
    Policy,
    Rate,
)
from tests.conftest import MakeAsyncLimiter, MakeLimiter
from tests.support.redis_servers import RedisProcess

pytestmark = pytest.mark.redis

LIMIT = 1000
ALGORITHM = FixedWindow(Rate(LIMIT, 3600.0))


def counted(decision: Any, limit: int = LIMIT) -> int:
    """Hits counted so far, from a peek (which reports what one more would leave)."""
    assert decision.allowed
    return int(limit - 1 - decision.remaining)


async def sent_and_waiting(admin: redis.Redis, connections: int = 1) -> None:
    """Until ``connections`` clients hold a script call blocked by ``CLIENT PAUSE``."""
    for _ in range(500):
        clients = admin.client_list()
        if sum("b" in c["flags"] and c["cmd"] == "evalsha" for c in clients) >= connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no script call reached the paused server")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.mark.parametrize(
    "options",
    [
        {"coalesce": "yes"},
        {"coalesce": 1},
        {"max_batch": 0},
        {"max_batch": True},
        {"max_batch": 2.0},
    ],
    ids=repr,
)
def test_options_are_checked(redis_url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AsyncRedisBackend(redis_url, **options)


async def test_concurrent_decisions_share_one_pipeline(
    redis_async_limiters: MakeAsyncLimiter,
) -> None:
    async with redis_async_limiters(ALGORITHM, ManualClock()) as limiter:
        backend = limiter.backend
        assert backend.coalescing  # type: ignore[attr-defined]
        decisions = await asyncio.gather(*(limiter.hit(f"k{i % 7}") for i in range(50)))
        assert all(d.allowed for d in decisions)
        stats = backend.stats  # type: ignore[attr-defined]
        assert (stats.batches, stats.decisions, stats.max_batch_size) == (1, 50, 50)
        assert stats.mean_batch_size == 50.0
        assert 0 < stats.queue_wait_p50 <= stats.latency_p50 <= stats.latency_p99
        # A lone caller is a batch of one, sent on the next iteration of the loop.
        assert (await limiter.hit("k0")).remaining == LIMIT - 9
        assert backend.stats.batches == 2  # type: ignore[attr-defined]


async def test_a_standalone_batch_is_one_script_call(server: RedisProcess) -> None:
    """Redis parses one EVALSHA for a whole batch of one algorithm, and its reply holds every
    request's decision, in order."""
    admin = server.client()
    backend = AsyncRedisBackend(server.url, prefix="one:")
    async with AsyncLimiter(SlidingLog("30/minute"), backend) as limiter:
        await limiter.hit("warm-up")  # loads the single script
        admin.config_resetstat()
        decisions = await asyncio.gather(*(limiter.hit(k) for k in ["a", "b", "a"] * 20))
        stats = admin.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1
        assert stats["cmdstat_script|load"]["calls"] == 1  # the batch script, once
        assert [d.remaining for d in decisions[:6]] == [29, 29, 28, 27, 28, 26]
        assert sum(d.allowed for d in decisions) == 50  # a: 30 of 40, b: all 20
        assert backend.stats.max_batch_size == 60
    admin.close()


async def test_an_error_in_a_batch_fails_its_request_alone(
    redis_async_limiters: MakeAsyncLimiter, redis_client: redis.Redis
) -> None:
    """A request whose Redis key holds something else (here a string where the script keeps a
    hash) gets a BackendError; the other requests of its batch are decided as usual, and the
    foreign value is left as it was."""
    async with redis_async_limiters(ALGORITHM, ManualClock()) as limiter:
        prefix = limiter.backend.prefix  # type: ignore[attr-defined]
        foreign = redis_key(prefix, ALGORITHM, "taken")
        redis_client.set(foreign, "someone else's", ex=60)
        results = await asyncio.gather(
            *(limiter.hit(k) for k in ["a", "taken", "a", "b"]), return_exceptions=True
        )
        assert isinstance(results[1], BackendError)
        assert not isinstance(results[1], BackendUnavailable)
        assert "WRONGTYPE" in str(results[1])
        assert [r.remaining for r in results if isinstance(r, Decision)] == [
            LIMIT - 1,
            LIMIT - 2,
            LIMIT - 1,
        ]
        assert redis_client.get(foreign) == b"someone else's"
        assert limiter.backend.stats.batches == 1  # type: ignore[attr-defined]


async def test_batches_are_capped(redis_async_limiters: MakeAsyncLimiter) -> None:
    async with redis_async_limiters(ALGORITHM, ManualClock(), max_batch=10) as limiter:
        decisions = await asyncio.gather(*(limiter.hit("hot") for _ in range(35)))
        assert sorted(d.remaining for d in decisions) == list(range(LIMIT - 35, LIMIT))
        stats = limiter.backend.stats  # type: ignore[attr-defined]
        assert (stats.batches, stats.decisions, stats.max_batch_size) == (4, 35, 10)
        assert stats.mean_batch_size == 8.75


async def test_uncoalesced_backends_send_no_batches(
    redis_async_limiters_uncoalesced: MakeAsyncLimiter,
) -> None:
    async with redis_async_limiters_uncoalesced(ALGORITHM, ManualClock()) as limiter:
        decisions = await asyncio.gather(*(limiter.hit("hot") for _ in range(20)))
        assert sorted(d.remaining for d in decisions) == list(range(LIMIT - 20, LIMIT))
        assert not limiter.backend.coalescing  # type: ignore[attr-defined]
        assert limiter.backend.stats.batches == 0  # type: ignore[attr-defined]


async def test_script_flush_between_coalesced_batches(
    redis_async_limiters: MakeAsyncLimiter, redis_client: redis.Redis
) -> None:
    async with redis_async_limiters(TokenBucket(Rate(LIMIT, 3600.0)), ManualClock()) as limiter:
        for batch in range(1, 6):
            redis_client.script_flush()
            decisions = await asyncio.gather(*(limiter.hit("k") for _ in range(10)))
            assert sorted(d.remaining for d in decisions) == list(
                range(LIMIT - 10 * batch, LIMIT - 10 * (batch - 1))
            )


async def test_only_the_refused_calls_are_resent(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Two scripts in one pipeline, only one of them in the cache: the calls of the other are
    refused (NOSCRIPT) and resent; each call is counted once. (The ten calls of each limiter
    go as one call of its batch script.)"""
    loaded, flushed = FixedWindow(Rate(LIMIT, 3600.0)), SlidingLog(Rate(LIMIT, 3600.0))
    backend = AsyncRedisBackend(redis_url, prefix=redis_prefix)
    async with AsyncLimiter(loaded, backend, clock=ManualClock()) as first:
        second = AsyncLimiter(flushed, backend, clock=ManualClock())
        for _ in range(2):  # both scripts known loaded: single and batch
            await asyncio.gather(*(limiter.hit("k") for limiter in (first, second)))
        redis_client.script_flush()
        redis_client.script_load(batch_script(loaded.kind).source)
        await asyncio.gather(*(limiter.hit("k") for limiter in (first, second) * 10))
        assert backend.stats.batches == 3
        assert counted(await first.peek("k")) == 12
        assert counted(await second.peek("k")) == 12


def test_script_flush_between_sync_batches(
    redis_limiters: MakeLimiter, redis_client: redis.Redis
) -> None:
    limiter = redis_limiters(Policy(FixedWindow("30/minute"), SlidingLog("40/hour")), ManualClock())
    for batch in range(1, 4):
        redis_client.script_flush()
        decisions = limiter.hit_many([("k", 1), ("j", 2)] * 5)
        assert [d.remaining for d in decisions[::2]] == [
            30 - 5 * (batch - 1) - i for i in range(1, 6)
        ]
    assert limiter.hit_many([("k", 15)])[0].remaining == 0
    assert limiter.hit_many([("k", 1)])[0].denied


def test_script_flush_on_every_cluster_node(
    redis_cluster_limiters: MakeLimiter,
    redis_cluster_async_limiters: MakeAsyncLimiter,
    redis_cluster_client: redis.cluster.RedisCluster,
) -> None:
    keys = [f"user:{i}" for i in range(30)]  # on every node
    limiter = redis_cluster_limiters(ALGORITHM, ManualClock())
    for batch in range(1, 4):
        redis_cluster_client.script_flush()
        decisions = limiter.hit_many([(key, 1) for key in keys])
        assert {d.remaining for d in decisions} == {LIMIT - batch}

    async def run() -> list[int]:
        # Its own algorithm: the sync and async factories hand out the same prefixes.
        algorithm = SlidingLog(Rate(LIMIT, 3600.0))
        async with redis_cluster_async_limiters(algorithm, ManualClock()) as alimiter:
            for _ in range(3):
                redis_cluster_client.script_flush()
                await asyncio.gather(*(alimiter.hit(key) for key in keys))
            assert alimiter.backend.stats.batches == 3  # type: ignore[attr-defined]
            return [counted(await alimiter.peek(key)) for key in keys]

    assert asyncio.run(run()) == [3] * len(keys)


async def test_a_stale_slot_map_is_redirected(
    redis_cluster: Any, redis_prefix: str, redis_cluster_client: redis.cluster.RedisCluster
) -> None:
    """A batch sent to a node that no longer owns a slot gets MOVED: those calls did not run,
    and are sent again, alone, to the right node."""
    backend = AsyncRedisBackend(redis_cluster.url, prefix=redis_prefix)
    async with AsyncLimiter(ALGORITHM, backend, clock=ManualClock()) as limiter:
        await limiter.hit("a")
        manager = backend.client.nodes_manager
        slot = redis.cluster.key_slot(redis_key(redis_prefix, ALGORITHM, "a").encode())
        owner = manager.slots_cache[slot][0]
        manager.slots_cache[slot] = [n for n in manager.nodes_cache.values() if n is not owner][:1]
        decisions = await asyncio.gather(*(limiter.hit("a") for _ in range(5)))
        assert sorted(d.remaining for d in decisions) == list(range(LIMIT - 6, LIMIT - 1))
        assert manager.slots_cache[slot][0].name == owner.name  # the client learnt the move
        assert counted(await limiter.peek("a")) == 6


def test_a_stale_slot_map_is_redirected_in_a_sync_batch(
    redis_cluster_limiters: MakeLimiter, redis_cluster_client: redis.cluster.RedisCluster
) -> None:
    limiter = redis_cluster_limiters(ALGORITHM, ManualClock())
    limiter.hit("a")
    prefix = limiter.backend.prefix  # type: ignore[attr-defined]
    manager = redis_cluster_client.nodes_manager
    slot = redis.cluster.key_slot(redis_key(prefix, ALGORITHM, "a").encode())
    owner = manager.slots_cache[slot][0]
    manager.slots_cache[slot] = [n for n in manager.nodes_cache.values() if n is not owner][:1]
    decisions = limiter.hit_many([("a", 1), ("b", 1), ("a", 2)])
    assert [d.remaining for d in decisions] == [LIMIT - 2, LIMIT - 1, LIMIT - 4]
    assert manager.slots_cache[slot][0].name == owner.name


async def test_a_policy_in_a_coalesced_batch(redis_async_limiters: MakeAsyncLimiter) -> None:
    policy = Policy(FixedWindow("10/minute"), SlidingLog("15/hour"))
    async with redis_async_limiters(policy, ManualClock()) as limiter:
        decisions = await asyncio.gather(*(limiter.hit(k) for k in ["a", "b"] * 12))
        assert sum(d.allowed for d in decisions) == 20
        assert [d.details[0].allowed for d in decisions if d.denied] == [False] * 4
        assert limiter.backend.stats.batches == 1  # type: ignore[attr-defined]


async def test_a_caller_cancelled_before_the_batch_is_sent_is_not_counted(
    redis_async_limiters: MakeAsyncLimiter,
) -> None:
    async with redis_async_limiters(ALGORITHM, ManualClock()) as limiter:
        tasks = [asyncio.create_task(limiter.hit("k")) for _ in range(20)]
        await asyncio.sleep(0)  # every task has queued its call; the batch is not sent yet
        tasks[3].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError)
        assert sorted(r.remaining for r in results if not isinstance(r, BaseException)) == list(
            range(LIMIT - 19, LIMIT)
        )
        assert counted(await limiter.peek("k")) == 19


async def test_a_caller_cancelled_in_flight_leaves_the_others_their_decisions(
    server: RedisProcess,
) -> None:
    admin = server.client()
    async with AsyncLimiter(ALGORITHM, AsyncRedisBackend(server.url, prefix="c:")) as limiter:
        await limiter.hit("k")  # connected, script loaded
        admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")  # scripts wait; CLIENT does not
        try:
            tasks = [asyncio.create_task(limiter.hit("k")) for _ in range(20)]
            await sent_and_waiting(admin)
            tasks[5].cancel()
            await asyncio.sleep(0.05)
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results.pop(5), asyncio.CancelledError)
        assert all(not isinstance(r, BaseException) and r.allowed for r in results)
        # The cancelled call had been sent: it ran, and is counted like the others.
        assert counted(await limiter.peek("k")) == 21
    admin.close()


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
async def test_a_connection_killed_mid_batch_fails_every_unknown_call(
    server: RedisProcess, coalesce: bool
) -> None:
    admin = server.client()
    backend = AsyncRedisBackend(server.url, prefix="kill:", coalesce=coalesce)
    async with AsyncLimiter(ALGORITHM, backend) as limiter:
        await limiter.hit("k")
        admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            batch = asyncio.gather(*(limiter.hit("k") for _ in range(20)), return_exceptions=True)
            await sent_and_waiting(admin, 1 if coalesce else 20)
            admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        results = await batch
        assert all(isinstance(r, BackendUnavailable) for r in results), results
        # Killed before running: none of them counted, and none was resent.
        assert counted(await limiter.peek("k")) == 1
        # The backend recovers with fresh connections.
        assert (await limiter.hit("k")).remaining == LIMIT - 2
    admin.close()


def test_a_connection_killed_mid_pipeline_is_never_resent(server: RedisProcess) -> None:
    admin = server.client()
    limiter = Limiter(ALGORITHM, RedisBackend(server.url, prefix="kill:"))
    limiter.hit("k")
    admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            limiter.hit_many([("k", 1)] * 20)
        except BaseException as exc:
            errors.append(exc)

    import threading

    thread = threading.Thread(target=run)
    thread.start()
    try:
        asyncio.run(sent_and_waiting(admin))
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], BackendUnavailable)
    assert counted(limiter.peek("k")) == 1
    limiter.close()
    admin.close()


@pytest.mark.slow
async def test_a_restart_under_coalesced_load_counts_nothing_twice(server: RedisProcess) -> None:
    """Tasks hit while the server restarts: a call that failed may or may not have been
    counted (its reply was lost), an admitted one is counted once, and none twice."""
    backend = AsyncRedisBackend(server.url, prefix="load:")
    big = 10**6  # never reached, however long the restart takes
    async with AsyncLimiter(FixedWindow(Rate(big, 3600.0)), backend) as limiter:
        admitted, failed = [0], [0]
        reached = {100: asyncio.Event(), 200: asyncio.Event()}
        restarted, stop = asyncio.Event(), asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    decision = await limiter.hit("k")
                except BackendUnavailable:
                    failed[0] += 1
                    await asyncio.sleep(0.001)
                    continue
                admitted[0] += decision.allowed
                for target, event in reached.items():
                    if admitted[0] >= target and (target < 200 or restarted.is_set()):
                        event.set()

        workers = [asyncio.create_task(worker()) for _ in range(30)]
        await reached[100].wait()
        await asyncio.to_thread(server.shutdown_saving)
        await asyncio.to_thread(server.start)
        restarted.set()
        await reached[200].wait()
        stop.set()
        await asyncio.gather(*workers)
        assert failed[0] > 0
        assert admitted[0] <= counted(await limiter.peek("k"), big) <= admitted[0] + failed[0]
        assert backend.stats.max_batch_size > 1


def test_a_long_batch_goes_as_several_script_calls(server: RedisProcess) -> None:
    """No script call decides more than SCRIPT_BATCH requests (Redis serves no one else while
    a script runs); together they decide the list in order."""
    admin = server.client()
    limiter = Limiter(SlidingLog("300/minute"), RedisBackend(server.url, prefix="long:"))
    limiter.hit("warm-up")
    admin.config_resetstat()
    requests = 2 * SCRIPT_BATCH + 50
    decisions = limiter.hit_many([("k", 1)] * requests)
    assert admin.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    assert [d.allowed for d in decisions] == [True] * 300 + [False] * (requests - 300)
    assert [d.remaining for d in decisions[:300]] == list(range(299, -1, -1))
    limiter.close()
    admin.close()
