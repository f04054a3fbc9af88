"""Redis backends against the peers on the same server, in the same run.

Contenders, sync (one decision per timed call):
- ``raw seed``: a bare redis-py loop calling the classic INCR/EXPIRE script, the client-side
  floor (no validation, no decision object);
- ``limits-core`` ``RedisBackend`` with FixedWindow, SlidingLog, TokenBucket;
- ``limits`` 5.x ``RedisStorage``, fixed window and moving window;
- ``throttled-py`` ``RedisStore``, fixed window and token bucket.

Async: ``AsyncRedisBackend`` (and the raw seed loop on ``redis.asyncio``), one timed round being
50 concurrent tasks of one decision each.

Each contender runs on a hot key and on 10,000 keys, with a limit no run can reach (every call
is admitted). Contenders alternate: the whole list is measured ``REPEATS`` times in turn, so a
slow phase of the machine hits them all. A summary of median calls per second and the ratios
is printed at the end. Quick CI mode: ``--benchmark-disable`` runs each contender once.

Run: ``pytest benchmarks/test_redis_bench.py -p no:randomly --benchmark-columns=ops``
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.servers import DEFAULT_REDIS_URL, require

pytestmark = pytest.mark.redis

URL = os.environ.get("LIMITS_CORE_REDIS_URL", DEFAULT_REDIS_URL)
LIMIT, PERIOD = 1_000_000_000, 3600  # never reached: every call is admitted
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
    "limits FixedWindow",
    "limits MovingWindow",
    "throttled FixedWindow",
    "throttled TokenBucket",
]
ASYNC = [
    "raw seed (async)",
    "limits-core FixedWindow (async)",
    "limits-core SlidingLog (async)",
    "limits-core TokenBucket (async)",
]
WORKLOADS = ["hot", "10k"]

#: median calls per second, by (workload, contender)
RESULTS: dict[tuple[str, str], list[float]] = {}


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
        from algorithms import FixedWindow, SlidingLog, TokenBucket
        from backends.redis import RedisBackend
        from limits_core import Limiter, Rate

        kinds: dict[str, Any] = {
            "FixedWindow": FixedWindow,
            "SlidingLog": SlidingLog,
            "TokenBucket": TokenBucket,
        }
        limiter = Limiter(kinds[name.split()[1]](Rate(LIMIT, PERIOD)), RedisBackend(URL))
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
    from algorithms import FixedWindow, SlidingLog, TokenBucket
    from backends.redis import AsyncRedisBackend
    from limits_core import AsyncLimiter, Rate

    kinds: dict[str, Any] = {
        "FixedWindow": FixedWindow,
        "SlidingLog": SlidingLog,
        "TokenBucket": TokenBucket,
    }
    algorithm = kinds[name.split()[1]](Rate(LIMIT, PERIOD))
    limiter = AsyncLimiter(algorithm, AsyncRedisBackend(URL))
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

    async def many() -> None:
        await asyncio.gather(*(hit(next(keys)) for _ in range(TASKS)))

    def round_() -> None:
        loop.run_until_complete(many())

    round_()
    benchmark.group = f"async x{TASKS} {workload}"
    benchmark.name = name
    benchmark(round_)
    loop.run_until_complete(close())
    loop.close()
    record(benchmark, workload, name, TASKS)


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
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
