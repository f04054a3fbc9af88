"""Redis backends against the peers on the same server, in the same run.

Contenders, sync (one decision per timed call):
- ``raw seed``: a bare redis-py loop calling the classic INCR/EXPIRE script, the client-side
  floor (no validation, no decision object);
- ``limits-core`` ``RedisBackend`` with FixedWindow, SlidingLog, TokenBucket;
- ``limits`` 5.x ``RedisStorage``, fixed window and moving window;
- ``throttled-py`` ``RedisStore``, fixed window and token bucket.

Async: ``AsyncRedisBackend`` (and the raw seed loop on ``redis.asyncio``), one timed round being
50 concurrent tasks of one decision each; FixedWindow also uncoalesced (``coalesce=False``), and
``limits`` 5.x async ``RedisStorage`` (redis-py) fixed window. ``test_async_tasks`` runs 50
long-lived tasks, each deciding one request after another on 10,000 keys, alternating the
contenders, and reports decisions per second and each call's p50 / p99 latency.

Each contender runs on a hot key and on 10,000 keys, with a limit no run can reach (every call
is admitted). Contenders alternate: the whole list is measured ``REPEATS`` times in turn, so a
slow phase of the machine hits them all; ``test_sync_interleaved`` also alternates the sync
contenders every 200 calls, for steadier ratios. A summary of calls per second and the ratios
is printed at the end. Quick CI mode: ``--benchmark-disable`` runs each contender once.

Run: ``pytest benchmarks/test_redis_bench.py -p no:randomly --benchmark-columns=ops``
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import DEFAULT_REDIS_URL, require

pytestmark = pytest.mark.redis

URL = os.environ.get("LIMITS_CORE_REDIS_URL", DEFAULT_REDIS_URL)
LIMIT, PERIOD = 1_000_000_000, 3600  # never reached: every call is admitted
#: The sliding window counter counts exactly only while limit * period_us < 2**53.
SWC_LIMIT = 2_000_000


def _algorithm(kind: str) -> Any:
    """A limits-core algorithm by class name, with a limit no run reaches."""
    import algorithms
    from limits_core import Rate

    limit = SWC_LIMIT if kind == "SlidingWindowCounter" else LIMIT
    return getattr(algorithms, kind)(Rate(limit, PERIOD))


MANY_KEYS = 10_000
TASKS = 50
REPEATS = int(os.environ.get("LIMITS_CORE_BENCH_REPEATS", "3"))

#: The classic fixed-window script this project grew from (../shared/seed/).
SEED = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

SYNC = [
    "raw seed",
    "limits-core FixedWindow",
    "limits-core SlidingLog",
    "limits-core TokenBucket",
    "limits-core SlidingWindowCounter",
    "limits-core GCRA",
    "limits-core LeakyBucket",
    "limits FixedWindow",
    "limits MovingWindow",
    "throttled FixedWindow",
    "throttled TokenBucket",
]
ASYNC = [
    "raw seed (async)",
    "limits-core FixedWindow (async)",
    "limits-core FixedWindow (async, uncoalesced)",
    "limits FixedWindow (async)",
    "limits-core SlidingLog (async)",
    "limits-core TokenBucket (async)",
    "limits-core SlidingWindowCounter (async)",
    "limits-core GCRA (async)",
    "limits-core LeakyBucket (async)",
]
WORKLOADS = ["hot", "10k"]

#: median calls per second, by (workload, contender)
RESULTS: dict[tuple[str, str], list[float]] = {}
#: calls per second measured by test_sync_interleaved, by (workload, contender)
INTERLEAVED: dict[tuple[str, str], float] = {}
#: test_sync_interleaved: calls per turn, and turns per contender
CHUNK = 200
TURNS = int(os.environ.get("LIMITS_CORE_BENCH_TURNS", "40"))
#: test_async_tasks: the contenders, calls per task per turn, and turns per contender
TASK_CONTENDERS = [
    "raw seed (async)",
    "limits-core FixedWindow (async)",
    "limits-core FixedWindow (async, uncoalesced)",
    "limits FixedWindow (async)",
]
TASK_CALLS = 40
TASK_TURNS = int(os.environ.get("LIMITS_CORE_BENCH_TASK_TURNS", "10"))
#: test_async_tasks: (decisions per second, p50 s, p99 s) of each turn, by contender
TASK_RESULTS: dict[str, list[tuple[float, float, float]]] = {}
#: Where test_async_tasks also writes its figures as JSON (for docs/benchmarks.md), if set.
TASKS_JSON = os.environ.get("LIMITS_CORE_BENCH_TASKS_JSON")


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    require(URL, 6379, "Redis")
    import redis

    value = f"bench-{uuid.uuid4().hex[:8]}:"
    yield value
    with redis.Redis.from_url(URL) as client:
        for pattern in (f"{value}*", f"LIMITS*{value}*", f"*{value}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)


def key_cycle(prefix: str, workload: str, name: str) -> Iterator[str]:
    """Keys of one contender (peers store different types under their keys)."""
    prefix = f"{prefix}{name.replace(' ', '-')}:"
    if workload == "hot":
        return itertools.repeat(f"{prefix}hot")
    return itertools.cycle([f"{prefix}user:{i}" for i in range(MANY_KEYS)])


def sync_contender(name: str, prefix: str) -> tuple[Callable[[str], object], Callable[[], None]]:
    """``(hit(key), close())`` for a contender; skips when its package is missing."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if name == "raw seed":
        client = redis.Redis.from_url(URL, retry=Retry(NoBackoff(), 0))
        script = client.register_script(SEED)
        return (lambda key: script((key,), (PERIOD,)) <= LIMIT), client.close
    if name.startswith("limits-core"):
        from backends.redis import RedisBackend
        from limits_core import Limiter

        limiter = Limiter(_algorithm(name.split()[1]), RedisBackend(URL))
        return limiter.hit, limiter.close
    if name.startswith("limits "):
        limits = pytest.importorskip("limits")
        from limits.storage import RedisStorage
        from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

        storage = RedisStorage(URL)
        kind = FixedWindowRateLimiter if name.endswith("FixedWindow") else MovingWindowRateLimiter
        strategy = kind(storage)
        item = limits.parse(f"{LIMIT} per {PERIOD} seconds")
        return (lambda key: strategy.hit(item, key)), lambda: None
    throttled = pytest.importorskip("throttled")
    using = (
        throttled.RateLimiterType.FIXED_WINDOW
        if name.endswith("FixedWindow")
        else throttled.RateLimiterType.TOKEN_BUCKET
    )
    limiter = throttled.Throttled(
        using=using.value,
        quota=throttled.rate_limiter.per_hour(LIMIT, burst=LIMIT),
        store=throttled.store.RedisStore(server=URL),
    )
    return (lambda key: limiter.limit(key)), lambda: None


def async_contender(name: str, prefix: str) -> tuple[Callable[[str], Any], Callable[[], Any]]:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    if name == "raw seed (async)":
        client = redis.asyncio.Redis.from_url(URL, retry=Retry(NoBackoff(), 0))
        script = client.register_script(SEED)

        async def raw(key: str) -> bool:
            return int(await script((key,), (PERIOD,))) <= LIMIT

        return raw, client.aclose
    if name.startswith("limits "):
        limits = pytest.importorskip("limits")
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import FixedWindowRateLimiter

        storage = RedisStorage(f"async+{URL}", implementation="redispy")
        strategy = FixedWindowRateLimiter(storage)
        item = limits.parse(f"{LIMIT} per {PERIOD} seconds")

        async def close_storage() -> None:
            await storage.bridge.storage.aclose()

        return (lambda key: strategy.hit(item, key)), close_storage
    from backends.redis import AsyncRedisBackend
    from limits_core import AsyncLimiter

    algorithm = _algorithm(name.split()[1])
    backend = AsyncRedisBackend(URL, coalesce="uncoalesced" not in name)
    limiter = AsyncLimiter(algorithm, backend)
    return limiter.hit, limiter.aclose


def record(benchmark: Any, workload: str, name: str, per_round: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None or not getattr(stats, "stats", None):  # --benchmark-disable
        return
    RESULTS.setdefault((workload, name), []).append(per_round / stats.stats.median)


CASES = [(r, w, n) for r in range(REPEATS) for w in WORKLOADS for n in SYNC]
ACASES = [(r, w, n) for r in range(REPEATS) for w in WORKLOADS for n in ASYNC]


@pytest.mark.parametrize(("repeat", "workload", "name"), CASES)
def test_sync(benchmark: Any, prefix: str, repeat: int, workload: str, name: str) -> None:
    hit, close = sync_contender(name, prefix)
    keys = key_cycle(prefix, workload, name)
    for _ in range(50):  # load scripts, open connections
        hit(next(keys))
    benchmark.group = f"sync {workload}"
    benchmark.name = name
    benchmark(lambda: hit(next(keys)))
    close()
    record(benchmark, workload, name, 1)


@pytest.mark.parametrize(("repeat", "workload", "name"), ACASES)
def test_async(benchmark: Any, prefix: str, repeat: int, workload: str, name: str) -> None:
    loop = asyncio.new_event_loop()
    hit, close = async_contender(name, prefix)
    keys = key_cycle(prefix, workload, name)

    latencies: list[float] = []

    async def timed(key: str) -> None:
        started = time.perf_counter()
        await hit(key)
        latencies.append(time.perf_counter() - started)

    async def many() -> None:
        await asyncio.gather(*(timed(next(keys)) for _ in range(TASKS)))

    def round_() -> None:
        loop.run_until_complete(many())

    round_()
    latencies.clear()
    benchmark.group = f"async x{TASKS} {workload}"
    benchmark.name = name
    benchmark(round_)
    loop.run_until_complete(close())
    loop.close()
    record(benchmark, workload, name, TASKS)
    if len(latencies) >= 100:
        latencies.sort()
        benchmark.extra_info["p99_ms"] = round(latencies[int(0.99 * len(latencies))] * 1000, 2)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_sync_interleaved(request: pytest.FixtureRequest, prefix: str, workload: str) -> None:
    """Every sync contender in turn, CHUNK calls at a time, TURNS times: all of them see the
    same phases of the machine (round trips here swing from about 30 to 150 us with the cores
    the client and server land on), so their ratios are steadier than those of separate
    benchmarks a second long each."""
    turns = 1 if request.config.getoption("benchmark_disable", False) else TURNS
    contenders = []
    for name in SYNC:
        try:
            hit, close = sync_contender(name, prefix)
        except pytest.skip.Exception:
            continue
        keys = key_cycle(prefix, workload, name)
        for _ in range(50):  # load scripts, open connections
            hit(next(keys))
        contenders.append((name, hit, keys, close))
    spent = dict.fromkeys((c[0] for c in contenders), 0.0)
    for _ in range(turns):
        for name, hit, keys, _close in contenders:
            started = time.perf_counter()
            for _ in range(CHUNK):
                hit(next(keys))
            spent[name] += time.perf_counter() - started
    for _name, _hit, _keys, close in contenders:
        close()
    if turns > 1:
        for name, seconds in spent.items():
            INTERLEAVED[workload, name] = turns * CHUNK / seconds


def test_async_tasks(request: pytest.FixtureRequest, prefix: str) -> None:
    """TASKS tasks, each deciding TASK_CALLS requests one after another on 10,000 keys, per
    contender in turn, TASK_TURNS times: throughput, and the latency each call sees (what
    coalescing trades: a call waits for its batch, the batch for one round trip)."""
    turns = 1 if request.config.getoption("benchmark_disable", False) else TASK_TURNS
    loop = asyncio.new_event_loop()
    contenders = []
    for name in TASK_CONTENDERS:
        try:
            hit, close = async_contender(name, prefix)
        except pytest.skip.Exception:
            continue
        contenders.append((name, hit, close, key_cycle(prefix, "10k", name)))

    async def turn(hit: Callable[[str], Any], keys: Iterator[str]) -> tuple[float, list[float]]:
        latencies: list[float] = []

        async def task() -> None:
            for _ in range(TASK_CALLS):
                started = time.perf_counter()
                await hit(next(keys))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(TASKS)))
        return time.perf_counter() - started, latencies

    for _name, hit, _close, keys in contenders:  # warm up: connections, scripts
        loop.run_until_complete(turn(hit, keys))
    for _ in range(turns):
        for name, hit, _close, keys in contenders:
            seconds, latencies = loop.run_until_complete(turn(hit, keys))
            latencies.sort()
            p50, p99 = latencies[len(latencies) // 2], latencies[int(0.99 * len(latencies))]
            TASK_RESULTS.setdefault(name, []).append((len(latencies) / seconds, p50, p99))
    for _name, _hit, close, _keys in contenders:
        loop.run_until_complete(close())
    loop.close()
    if turns == 1:
        TASK_RESULTS.clear()
    elif TASKS_JSON:
        Path(TASKS_JSON).write_text(json.dumps(_tasks_document()))


def _tasks_document() -> dict[str, Any]:
    """What ``benchmarks.report --tasks`` renders: per contender, each turn's figures."""
    return {
        "tasks": TASKS,
        "calls_per_task": TASK_CALLS,
        "keys": MANY_KEYS,
        "turns": TASK_TURNS,
        "contenders": {
            name: [{"per_second": r, "p50_s": p50, "p99_s": p99} for r, p50, p99 in turns]
            for name, turns in TASK_RESULTS.items()
        },
    }


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS and not INTERLEAVED and not TASK_RESULTS:
        return
    # Printed past pytest's output capture, after the last benchmark of the module.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled():
        _print_summary(reporter.write_line)


def _print_summary(write: Callable[[str], object]) -> None:
    write("")
    write("limits-core Redis benchmark: median calls/s over alternating repeats")
    for workload in WORKLOADS:
        rates = {n: statistics.median(v) for (w, n), v in RESULTS.items() if w == workload}
        for floor_name, names in (("raw seed", SYNC), ("raw seed (async)", ASYNC)):
            floor = rates.get(floor_name)
            for name in names:
                if name not in rates:
                    continue
                ratio = f"{rates[name] / floor:5.2f}x raw" if floor else ""
                write(f"  {workload:>3} {name:<34} {rates[name]:9.0f} calls/s  {ratio}")
        ours, peer = rates.get("limits-core FixedWindow"), rates.get("limits FixedWindow")
        if ours and peer:
            ratio = ours / peer
            write(f"  {workload:>3} limits-core FixedWindow / limits FixedWindow: {ratio:.2f}x")
        _write_async_ratios(write, workload, rates)
    _print_tasks(write)
    if not INTERLEAVED:
        return
    write(f"sync, interleaved: {CHUNK} calls per contender in turn, {TURNS} turns")
    for workload in WORKLOADS:
        rates = {n: r for (w, n), r in INTERLEAVED.items() if w == workload}
        floor, peer = rates.get("raw seed"), rates.get("limits FixedWindow")
        for name, rate in rates.items():
            ratio = f"{rate / floor:5.2f}x raw" if floor else ""
            write(f"  {workload:>3} {name:<34} {rate:9.0f} calls/s  {ratio}")
        ours = rates.get("limits-core FixedWindow")
        if ours and peer:
            ratio = ours / peer
            write(f"  {workload:>3} limits-core FixedWindow / limits FixedWindow: {ratio:.2f}x")


def _write_async_ratios(
    write: Callable[[str], object], label: str, rates: dict[str, float]
) -> None:
    ours = rates.get("limits-core FixedWindow (async)")
    for other in ("limits-core FixedWindow (async, uncoalesced)", "limits FixedWindow (async)"):
        if ours and rates.get(other):
            ratio = ours / rates[other]
            write(f"  {label:>3} limits-core FixedWindow (async) / {other}: {ratio:.2f}x")


def _print_tasks(write: Callable[[str], object]) -> None:
    if not TASK_RESULTS:
        return
    write(f"async, {TASKS} tasks x {TASK_CALLS} calls on 10k keys, {TASK_TURNS} alternating turns")
    write("  (decisions/s median [min-max] over turns; latency of one call, median of turns)")
    rates = {}
    for name, turns in TASK_RESULTS.items():
        throughput = sorted(t[0] for t in turns)
        p50 = statistics.median(t[1] for t in turns) * 1e3
        p99 = statistics.median(t[2] for t in turns) * 1e3
        rates[name] = statistics.median(throughput)
        write(
            f"  {name:<46} {rates[name]:8.0f}/s [{throughput[0]:.0f}-{throughput[-1]:.0f}]"
            f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        )
    _write_async_ratios(write, "10k", rates)
