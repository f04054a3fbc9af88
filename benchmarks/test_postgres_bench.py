"""PostgreSQL backends against the floor (a raw driver loop doing one fixed-window upsert per
request) and pyrate-limiter's PostgreSQL bucket, in the same run, on the same server.

Run (full):   pytest benchmarks/test_postgres_bench.py --benchmark-group-by=group
Run (quick):  pytest benchmarks/test_postgres_bench.py --benchmark-disable   (one round each)

- async: ``ROUND`` decisions per timed call from 50 concurrent tasks on a pool of 10
  connections (groups ``async x3000 ...``); sync: one decision per timed call, one thread.
- keys: one hot key, or 10,000 keys cycled through (rows primed beforehand, so the rounds
  measure updates of existing rows, the steady state).
- commit: ``durable`` is the server's default (``synchronous_commit=on``: each commit waits for
  its WAL flush, so the disk sets the pace); ``async-commit`` sets ``synchronous_commit=off``
  on the connections (of the backend and of the floor alike), which shows the CPU cost.
- every request is admitted (limits far above the traffic): the write path.
- coalescing: the async backend coalesces concurrent decisions into batch statements by
  default (contenders ``limits-core <Algorithm>``); ``limits-core <Algorithm> uncoalesced``
  sends one statement per decision (``coalesce=False``), as the floor does.

Throughput is decisions per second: async, the median over rounds; sync, from the median
call. The summary at the end prints every figure with its ratio to the floor of the same mode
and workload (and, async, the 99th percentile of one decision's latency over all rounds),
each contender's rounds alternating with rounds of the floor so that both see the same load
on the machine. The floor's pool is set up like the backend's (same size, no reset
query and no idle timer on release), so the ratio isolates what a decision costs beyond a bare
upsert: the SQL around the upsert and the Python around the call. The floor goes through
``pool.fetchrow`` (asyncpg's acquire and release on every request), while the async backend
hands a connection straight to the next waiting task: that is how its ratio can pass 1.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.async_backend import _keep_session
from backends.postgres.common import Layout
from limits_core import AsyncLimiter, Limiter, Rate
from tests.support.servers import require

pytestmark = pytest.mark.postgres

TASKS = 50
POOL = 10
ROUND = 3000  # decisions per round, async
SYNC_DECISIONS = 3000  # timed calls, sync (one decision each)
ROUNDS = 5
MANY_KEYS = 10_000
WORKLOADS = {"hot": 1, "10k": MANY_KEYS}
COMMITS = {"durable": {}, "async-commit": {"synchronous_commit": "off"}}
#: Far above what a run sends: every request is admitted.
RATE = Rate(1_000_000_000, 3600.0)
#: The sliding log keeps an entry per admitted request still in its window, so its row grows
#: with the traffic of one period: a window of one second keeps it to a second of traffic.
SLIDING_RATE = Rate(1_000_000_000, 1.0)
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "FixedWindow": lambda: FixedWindow(RATE),
    "SlidingLog": lambda: SlidingLog(SLIDING_RATE),
    "TokenBucket": lambda: TokenBucket(RATE),
}
PERIOD_US = 3_600_000_000

FLOOR_TABLE = f"bench_floor_{uuid.uuid4().hex[:8]}"
#: The floor: one statement per request, the server's clock, a window of one hour.
FLOOR_UPSERT = f"""
INSERT INTO {FLOOR_TABLE} AS f (key, start, count)
VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 1)
ON CONFLICT (key) DO UPDATE SET
    start = CASE WHEN excluded.start - f.start >= $2 THEN excluded.start ELSE f.start END,
    count = CASE WHEN excluded.start - f.start >= $2 THEN 1 ELSE f.count + 1 END
RETURNING start, count
"""
FLOOR_UPSERT_SYNC = FLOOR_UPSERT.replace("$1", "%(key)s").replace("$2", "%(period)s")

#: (api, commit, workload) -> {contender: (decisions per second, the floor's in the same
#: rounds, median of the per-round ratios)}, printed at the end.
RESULTS: dict[tuple[str, str, str], dict[str, tuple[float, float, float]]] = {}
#: (commit, workload, contender) -> 99th percentile of one async decision's latency (ms).
P99_MS: dict[tuple[str, str, str], float] = {}
#: The async backend with and without coalescing, by contender-name suffix.
COALESCE = {"": True, " uncoalesced": False}


def _keys(workload: str) -> list[str]:
    return [f"bench:{i}" for i in range(WORKLOADS[workload])]


def _options(commit: str) -> str:
    return " ".join(f"-c {k}={v}" for k, v in COMMITS[commit].items())


class _Summary:
    """A pytest plugin printing the figures and ratios after the run."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not RESULTS:
            return
        write = terminalreporter.write_line
        write("")
        write(
            "PostgreSQL decisions/s (median of rounds). Each contender's rounds alternate with "
            "rounds of the floor; ratio = median of the per-round ratios."
        )
        write(
            f"  {'api':5} {'commit':12} {'keys':4} {'contender':30} {'rate':>11} "
            f"{'floor':>11}  ratio   p99"
        )
        for (api, commit, workload), figures in sorted(RESULTS.items()):
            for name, (rate, floor, ratio) in figures.items():
                p99 = P99_MS.get((commit, workload, name)) if api == "async" else None
                write(
                    f"  {api:5} {commit:12} {workload:4} {name:30} {rate:9,.0f}/s "
                    f"{floor:9,.0f}/s  {ratio:4.2f}x"
                    + (f" {p99:5.1f}ms" if p99 is not None else "")
                )


def _record(
    api: str, commit: str, workload: str, name: str, rates: list[float], floors: list[float]
) -> None:
    ratios = [rate / floor for rate, floor in zip(rates, floors, strict=True)]
    RESULTS.setdefault((api, commit, workload), {})[name] = (
        statistics.median(rates),
        statistics.median(floors),
        statistics.median(ratios),
    )


@pytest.fixture(scope="module")
def dsn(request: pytest.FixtureRequest) -> str:
    dsn: str = require(request.config.getoption("--postgres-dsn"), 5432, "PostgreSQL")
    request.config.pluginmanager.register(_Summary(), "limits-core-postgres-bench-summary")
    return dsn


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the module's async code, driven from synchronous tests (the
    benchmark fixture times synchronous callables)."""
    with asyncio.Runner() as run:
        yield run


@pytest.fixture(scope="module")
def table(dsn: str, runner: asyncio.Runner) -> Iterator[str]:
    """The backends' table and the floor's, with every key of every workload primed (with
    asynchronous commits, to make setup quick)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {FLOOR_TABLE} (key text PRIMARY KEY, start bigint NOT NULL, "
            "count bigint NOT NULL)"
        )
        connection.execute(
            f"INSERT INTO {FLOOR_TABLE} SELECT 'bench:' || i, "
            "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 1 "
            f"FROM generate_series(0, {MANY_KEYS - 1}) AS i"
        )

    async def prime() -> None:
        backend = AsyncPostgresBackend(
            dsn, table=name, pool_size=POOL, server_settings={"synchronous_commit": "off"}
        )
        for algorithm in ALGORITHMS.values():
            limiter = AsyncLimiter(algorithm(), backend)
            await _concurrently(limiter.hit, iter(_keys("10k")))
        await backend.aclose()

    runner.run(prime())
    yield name
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(Layout(table=name).drop_ddl())
        connection.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")


async def _concurrently(
    decide: Callable[[str], Awaitable[Any]],
    keys: Iterator[str],
    latencies: list[float] | None = None,
) -> None:
    async def worker() -> None:
        for key in keys:
            await decide(key)

    async def timed_worker(latencies: list[float]) -> None:
        clock = time.perf_counter
        for key in keys:
            start = clock()
            await decide(key)
            latencies.append(clock() - start)

    if latencies is not None:
        await asyncio.gather(*(timed_worker(latencies) for _ in range(TASKS)))
        return

    await asyncio.gather(*(worker() for _ in range(TASKS)))


class _Floors:
    """The floor's connections, one pool (async) or connection (sync) per commit mode."""

    def __init__(self, dsn: str, runner: asyncio.Runner) -> None:
        self.dsn, self.runner = dsn, runner
        self.pools: dict[str, Any] = {}
        self.connections: dict[str, Any] = {}

    def decide_async(self, commit: str) -> Callable[[str], Awaitable[Any]]:
        import asyncpg

        async def create() -> Any:
            return await asyncpg.create_pool(
                self.dsn,
                min_size=POOL,
                max_size=POOL,
                reset=_keep_session,
                max_inactive_connection_lifetime=0,
                server_settings=COMMITS[commit],
            )

        if commit not in self.pools:
            self.pools[commit] = self.runner.run(create())
        fetchrow = self.pools[commit].fetchrow
        return lambda key: fetchrow(FLOOR_UPSERT, key, PERIOD_US)

    def decide_sync(self, commit: str) -> Callable[[str], Any]:
        import psycopg

        if commit not in self.connections:
            self.connections[commit] = psycopg.connect(
                self.dsn, autocommit=True, options=_options(commit)
            )
        execute = self.connections[commit].execute

        def decide(key: str) -> Any:
            params = {"key": key, "period": PERIOD_US}
            return execute(FLOOR_UPSERT_SYNC, params, prepare=True).fetchone()

        return decide

    def close(self) -> None:
        for pool in self.pools.values():
            self.runner.run(pool.close())
        for connection in self.connections.values():
            connection.close()


@pytest.fixture(scope="module")
def floors(dsn: str, runner: asyncio.Runner, table: str) -> Iterator[_Floors]:
    floors = _Floors(dsn, runner)
    yield floors
    floors.close()


# -- async: 50 tasks on a pool of 10 ------------------------------------------------------------


def _async_rounds(
    benchmark: Any,
    runner: asyncio.Runner,
    decide: Callable[[str], Awaitable[Any]],
    floor: Callable[[str], Awaitable[Any]],
    keys: list[str],
    latencies: tuple[list[float], list[float]] = ([], []),
) -> tuple[list[float], list[float]]:
    """Rounds of ``decide``, each preceded by an untimed (by pytest-benchmark) round of the
    floor on the same keys; returns both lists of rates, and adds every decision's latency
    (seconds) to ``latencies`` (``decide``'s, the floor's)."""
    rates: list[float] = []
    floors: list[float] = []

    async def one_round(
        decide: Callable[[str], Awaitable[Any]], out: list[float], latencies: list[float]
    ) -> None:
        cycle = itertools.cycle(keys)
        start = time.perf_counter()
        await _concurrently(decide, (next(cycle) for _ in range(ROUND)), latencies)
        out.append(ROUND / (time.perf_counter() - start))

    # Warm up every connection (connect, prepare the statement), untimed.
    for warm in (decide, floor):
        runner.run(_concurrently(warm, itertools.islice(itertools.cycle(keys), 5 * TASKS)))
    benchmark.pedantic(
        lambda: runner.run(one_round(decide, rates, latencies[0])),
        setup=lambda: runner.run(one_round(floor, floors, latencies[1])),
        rounds=ROUNDS,
    )
    return rates, floors


def _p99_ms(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] * 1000


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("commit", sorted(COMMITS))
def test_async_floor(
    benchmark: Any, runner: asyncio.Runner, floors: _Floors, commit: str, workload: str
) -> None:
    """The floor: a raw asyncpg loop, one fixed-window upsert statement per request (against
    itself, to show the spread between rounds)."""
    benchmark.group = f"async x{ROUND} {commit} {workload}"
    benchmark.name = "raw asyncpg upsert"
    floor = floors.decide_async(commit)
    latencies: tuple[list[float], list[float]] = ([], [])
    rates, paired = _async_rounds(benchmark, runner, floor, floor, _keys(workload), latencies)
    _record("async", commit, workload, "floor", rates, paired)
    P99_MS[commit, workload, "floor"] = _p99_ms(latencies[0] + latencies[1])
    benchmark.extra_info["p99_ms"] = round(P99_MS[commit, workload, "floor"], 2)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("commit", sorted(COMMITS))
@pytest.mark.parametrize("mode", list(COALESCE), ids=["coalesced", "uncoalesced"])
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_async_backend(
    benchmark: Any,
    runner: asyncio.Runner,
    dsn: str,
    table: str,
    floors: _Floors,
    name: str,
    mode: str,
    commit: str,
    workload: str,
) -> None:
    contender = f"{name}{mode}"
    benchmark.group = f"async x{ROUND} {commit} {workload}"
    benchmark.name = f"limits-core {contender}"
    backend = AsyncPostgresBackend(
        dsn,
        table=table,
        pool_size=POOL,
        server_settings=COMMITS[commit],
        coalesce=COALESCE[mode],
    )
    limiter = AsyncLimiter(ALGORITHMS[name](), backend)
    latencies: tuple[list[float], list[float]] = ([], [])
    rates, paired = _async_rounds(
        benchmark, runner, limiter.hit, floors.decide_async(commit), _keys(workload), latencies
    )
    runner.run(backend.aclose())
    _record("async", commit, workload, contender, rates, paired)
    P99_MS[commit, workload, contender] = _p99_ms(latencies[0])
    benchmark.extra_info["p99_ms"] = round(P99_MS[commit, workload, contender], 2)
    if COALESCE[mode]:
        stats = backend.stats
        benchmark.extra_info["mean_batch_size"] = round(stats.mean_batch_size, 1)
        benchmark.extra_info["batch_latency_p99_ms"] = round(stats.latency_p99 * 1000, 2)


# -- sync: one thread ---------------------------------------------------------------------------


def _sync_rounds(
    benchmark: Any, decide: Callable[[str], Any], floor: Callable[[str], Any], keys: list[str]
) -> tuple[list[float], list[float]]:
    """Time ``decide`` one call at a time (the suite's convention for sync contenders), each
    call preceded by an untimed (by pytest-benchmark) call of the floor on the same key.
    Returns the rates of both over ``ROUNDS`` consecutive slices of the calls, each from the
    slice's median call (as ``benchmarks.ratios`` does: a busy machine's outliers would
    dominate a mean)."""
    cycle = itertools.cycle(keys)
    spent: tuple[list[float], list[float]] = ([], [])
    key = keys[0]

    def timed(call: Callable[[str], Any], out: list[float]) -> None:
        start = time.perf_counter()
        call(key)
        out.append(time.perf_counter() - start)

    def floor_then_pick() -> None:
        nonlocal key
        key = next(cycle)
        timed(floor, spent[1])

    for _ in range(20):  # warm up: connect, prepare
        decide(keys[0])
        floor(keys[0])
    benchmark.pedantic(
        lambda: timed(decide, spent[0]), setup=floor_then_pick, rounds=SYNC_DECISIONS
    )
    rates: tuple[list[float], list[float]] = ([], [])
    size = max(1, len(spent[0]) // ROUNDS)
    for start in range(0, len(spent[0]), size):
        for durations, out in zip(spent, rates, strict=True):
            out.append(1 / statistics.median(durations[start : start + size]))
    return rates


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("commit", sorted(COMMITS))
def test_sync_floor(benchmark: Any, floors: _Floors, commit: str, workload: str) -> None:
    """The sync floor: a raw psycopg loop, one prepared upsert per request."""
    benchmark.group = f"sync {commit} {workload}"
    benchmark.name = "raw psycopg upsert"
    floor = floors.decide_sync(commit)
    rates, paired = _sync_rounds(benchmark, floor, floor, _keys(workload))
    _record("sync", commit, workload, "floor", rates, paired)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("commit", sorted(COMMITS))
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_sync_backend(
    benchmark: Any, dsn: str, table: str, floors: _Floors, name: str, commit: str, workload: str
) -> None:
    benchmark.group = f"sync {commit} {workload}"
    benchmark.name = f"limits-core {name}"
    backend = PostgresBackend(dsn, table=table, pool_size=2, server_settings=COMMITS[commit])
    with Limiter(ALGORITHMS[name](), backend) as limiter:
        rates, paired = _sync_rounds(
            benchmark, limiter.hit, floors.decide_sync(commit), _keys(workload)
        )
    _record("sync", commit, workload, name, rates, paired)


@pytest.mark.parametrize("commit", sorted(COMMITS))
def test_sync_pyrate_limiter_postgres_bucket(
    benchmark: Any, dsn: str, floors: _Floors, commit: str
) -> None:
    """pyrate-limiter's PostgresBucket on a psycopg pool. Hot key only: a bucket keeps one
    table for every name it sees, so separate limits per key need a bucket (a table) per key."""
    pyrate = pytest.importorskip("pyrate_limiter")
    import psycopg
    from psycopg_pool import ConnectionPool

    benchmark.group = f"sync {commit} hot"
    benchmark.name = "pyrate-limiter PostgresBucket"
    table = f"bench_{uuid.uuid4().hex[:8]}"
    # Its check-and-put takes a table lock, so it needs transactions (no autocommit).
    pool = ConnectionPool(
        dsn, min_size=2, max_size=2, kwargs={"options": _options(commit)}, open=True
    )
    rate = pyrate.Rate(1_000_000_000, pyrate.Duration.HOUR)
    limiter = pyrate.Limiter(pyrate.PostgresBucket(pool, table, [rate]))
    try:
        rates, paired = _sync_rounds(
            benchmark,
            lambda key: limiter.try_acquire(key, blocking=False),
            floors.decide_sync(commit),
            _keys("hot"),
        )
    finally:
        limiter.close()
        pool.close()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP TABLE IF EXISTS "ratelimit___{table}"')
    _record("sync", commit, "hot", "pyrate-limiter PostgresBucket", rates, paired)
