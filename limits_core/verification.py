"""Check a live store: model agreement, atomicity under concurrency, and key expiry.

:func:`verify` is what ``limits-core verify`` runs. For each algorithm, under a fresh random
prefix, it:

1. runs seeded random programs (:mod:`limits_core.programs`) through :class:`Limiter` and
   :class:`AsyncLimiter` on the store with a :class:`ManualClock`, and compares every decision
   with the algorithm's pure ``step``;
2. hammers one key from threads (sync backend) and from asyncio tasks (async backend) with the
   clock frozen: exactly ``algorithm.limit`` requests must be admitted;
3. lists the keys it wrote that have no expiry, where the store can tell;
4. deletes what it wrote.

Steps 3 and 4 use optional hooks a backend may implement (:class:`PurgesPrefix`,
:class:`ReportsKeysWithoutExpiry` and their async twins). Without them, built-in fallbacks
cover the in-memory backend, Redis (a backend exposing its redis-py ``client``: SCAN, PTTL,
DEL) and PostgreSQL (a backend exposing its psycopg ``pool`` and ``layout``); any other store
is reported as not cleaned.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from limits_core.algorithm import Algorithm
from limits_core.backend import AsyncBackend, Backend
from limits_core.clock import ManualClock
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError
from limits_core.limiter import AsyncLimiter, Limiter
from limits_core.programs import KEYS, START_US, Op, random_program, run_async, run_model, run_sync
from limits_core.rate import Rate

__all__ = [
    "HAMMER_RATE",
    "PROGRAM_RATE",
    "AlgorithmReport",
    "AsyncPurgesPrefix",
    "AsyncReportsKeysWithoutExpiry",
    "Disagreement",
    "HammerResult",
    "PurgesPrefix",
    "ReportsKeysWithoutExpiry",
    "keys_without_expiry",
    "purge_prefix",
    "verify",
]

#: Small limits, so that random programs reach denials, window ends and refills quickly.
PROGRAM_RATE = "5/10s"
#: Large enough for real contention; the clock is frozen, so nothing refills.
HAMMER_RATE = "150/hour"
THREADS = 8
TASKS = 200


@runtime_checkable
class PurgesPrefix(Protocol):
    """Optional hook: a backend that can delete everything stored under its own prefix.

    ``purge_prefix()`` deletes every key (row) this backend wrote, that is every key starting
    with its ``prefix``, and returns how many it deleted. It must refuse (raise
    :class:`~limits_core.ConfigurationError`) when the prefix is empty, since that would
    delete other applications' state.
    """

    def purge_prefix(self) -> int: ...


@runtime_checkable
class AsyncPurgesPrefix(Protocol):
    """The asyncio twin of :class:`PurgesPrefix`."""

    async def apurge_prefix(self) -> int: ...


@runtime_checkable
class ReportsKeysWithoutExpiry(Protocol):
    """Optional hook: a backend that can list its keys that would never expire.

    ``keys_without_expiry()`` returns the store keys under the backend's prefix that have no
    expiry (a Redis key with no TTL); every key should have one (rule 3 of the design).
    """

    def keys_without_expiry(self) -> list[str]: ...


@runtime_checkable
class AsyncReportsKeysWithoutExpiry(Protocol):
    """The asyncio twin of :class:`ReportsKeysWithoutExpiry`."""

    async def akeys_without_expiry(self) -> list[str]: ...


@dataclass(frozen=True)
class Disagreement:
    """A decision of the store that differs from the model's."""

    facade: str  # "sync" or "async"
    program: int
    index: int
    op: Op
    expected: Decision | None
    got: Decision | None

    def __str__(self) -> str:
        return (
            f"{self.facade} program {self.program}, op {self.index} {self.op}: "
            f"model {_short(self.expected)}, store {_short(self.got)}"
        )


def _short(d: Decision | None) -> str:
    if d is None:
        return "-"
    verdict = "allowed" if d.allowed else "denied"
    return f"{verdict} remaining={d.remaining} reset={d.reset_after:g}s retry={d.retry_after:g}s"


@dataclass(frozen=True)
class HammerResult:
    """One key hammered far past its limit with a frozen clock."""

    mode: str  # "threads" or "tasks"
    workers: int
    attempts: int
    admitted: int
    limit: int
    remaining_after: int

    @property
    def passed(self) -> bool:
        return self.admitted == self.limit and self.remaining_after == 0

    def __str__(self) -> str:
        return (
            f"{self.workers} {self.mode}: admitted {self.admitted} of {self.attempts} "
            f"(limit {self.limit}), remaining after {self.remaining_after}"
        )


@dataclass
class AlgorithmReport:
    """Everything :func:`verify` found for one algorithm; ``passed`` sums it up."""

    name: str
    algorithm: str
    prefix: str
    programs: int = 0
    decisions: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    hammers: list[HammerResult] = field(default_factory=list)
    #: Keys without expiry; ``None`` when the store cannot tell.
    keys_without_expiry: list[str] | None = None
    cleanup: str = "not attempted"
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            not self.disagreements
            and not self.errors
            and len(self.hammers) == 2
            and all(h.passed for h in self.hammers)
            and not self.keys_without_expiry
        )


AlgorithmFactory = Callable[[Rate | str], Algorithm]
BackendFactory = Callable[[str], Backend]
AsyncBackendFactory = Callable[[str], AsyncBackend]


def verify(
    algorithms: Mapping[str, AlgorithmFactory],
    backend: BackendFactory,
    async_backend: AsyncBackendFactory,
    *,
    examples: int = 50,
    seed: int = 0,
    max_ops: int = 40,
    prefix: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[AlgorithmReport]:
    """Verify each algorithm on a store; see the module's docstring.

    Args:
        algorithms: name -> constructor from a rate (``algorithms.ALGORITHMS``).
        backend: ``make(prefix) -> Backend``, e.g. ``lambda p: backend_from_url(url, prefix=p)``.
        async_backend: ``make(prefix) -> AsyncBackend``; called inside the event loop.
        examples: random programs per algorithm and facade.
        seed: seeds every program; the same seed replays the same programs.
        max_ops: the longest program.
        prefix: the prefix under which all keys are written (one per algorithm is derived from
            it); a random one by default.
        on_step: called after each program and each hammer, with a short description.
    """
    if prefix is None:
        prefix = f"limits-core-verify:{random.Random().getrandbits(48):012x}:"
    notify = on_step or (lambda _: None)
    reports = []
    for name, factory in algorithms.items():
        report = AlgorithmReport(name, repr(factory(PROGRAM_RATE)), f"{prefix}{name}:")
        _verify_one(report, factory, backend, async_backend, examples, seed, max_ops, notify)
        reports.append(report)
    return reports


@contextmanager
def _recorded(report: AlgorithmReport, stage: str) -> Iterator[None]:
    # A user's store (or a custom backend) can fail in any way; the report must say how and
    # the remaining stages still run, so every exception is recorded, not raised.
    try:
        yield
    except Exception as exc:
        report.errors.append(f"{stage}: {type(exc).__name__}: {exc}")


def _verify_one(
    report: AlgorithmReport,
    factory: AlgorithmFactory,
    make_backend: BackendFactory,
    make_async_backend: AsyncBackendFactory,
    examples: int,
    seed: int,
    max_ops: int,
    notify: Callable[[str], None],
) -> None:
    store: Backend | None = None
    with _recorded(report, "sync backend"):
        store = make_backend(report.prefix)
    try:
        if store is not None:
            with _recorded(report, "sync programs"):
                _sync_programs(report, factory, store, examples, seed, max_ops, notify)
            with _recorded(report, "thread hammer"):
                limiter = Limiter(factory(HAMMER_RATE), store, clock=_clock())
                report.hammers.append(_hammer_threads(limiter))
                notify(f"{report.name}: threads")
        with _recorded(report, "async"):
            asyncio.run(
                _async_part(report, factory, make_async_backend, examples, seed, max_ops, notify)
            )
        if store is not None:
            with _recorded(report, "expiry audit"):
                report.keys_without_expiry = keys_without_expiry(store, report.prefix)
            with _recorded(report, "cleanup"):
                report.cleanup = purge_prefix(store, report.prefix)
    finally:
        if store is not None:
            with _recorded(report, "close"):
                store.close()


def _clock() -> ManualClock:
    return ManualClock(start=START_US / 1_000_000)


def _compare(
    report: AlgorithmReport,
    facade: str,
    number: int,
    program: list[Op],
    got: list[Decision | None],
    expected: list[Decision | None],
) -> None:
    report.programs += 1
    report.decisions += sum(d is not None for d in expected)
    for index, (mine, theirs) in enumerate(zip(expected, got, strict=True)):
        if mine != theirs:
            report.disagreements.append(
                Disagreement(facade, number, index, program[index], mine, theirs)
            )
            return  # later decisions of this program follow from the first difference


def _programs(
    report: AlgorithmReport,
    factory: AlgorithmFactory,
    facade: str,
    examples: int,
    seed: int,
    max_ops: int,
) -> Iterator[tuple[int, Algorithm, list[Op]]]:
    rng = random.Random(f"{seed}:{report.name}:{facade}")
    for number in range(examples):
        algorithm = factory(PROGRAM_RATE)
        # Fresh keys per program: each program starts its clock over at START_US.
        keys = tuple(f"{facade[0]}{number}:{k}" for k in KEYS)
        yield number, algorithm, random_program(rng, algorithm, keys, max_ops)


def _sync_programs(
    report: AlgorithmReport,
    factory: AlgorithmFactory,
    store: Backend,
    examples: int,
    seed: int,
    max_ops: int,
    notify: Callable[[str], None],
) -> None:
    for number, algorithm, program in _programs(report, factory, "sync", examples, seed, max_ops):
        clock = _clock()
        got = run_sync(Limiter(algorithm, store, clock=clock), clock, program)
        _compare(report, "sync", number, program, got, run_model(algorithm, program))
        notify(f"{report.name}: sync program {number}")


async def _async_part(
    report: AlgorithmReport,
    factory: AlgorithmFactory,
    make_async_backend: AsyncBackendFactory,
    examples: int,
    seed: int,
    max_ops: int,
    notify: Callable[[str], None],
) -> None:
    store = make_async_backend(report.prefix)
    try:
        with _recorded(report, "async programs"):
            programs = _programs(report, factory, "async", examples, seed, max_ops)
            for number, algorithm, program in programs:
                clock = _clock()
                limiter = AsyncLimiter(algorithm, store, clock=clock)
                got = await run_async(limiter, clock, program)
                _compare(report, "async", number, program, got, run_model(algorithm, program))
                notify(f"{report.name}: async program {number}")
        with _recorded(report, "task hammer"):
            limiter = AsyncLimiter(factory(HAMMER_RATE), store, clock=_clock())
            report.hammers.append(await _hammer_tasks(limiter))
            notify(f"{report.name}: tasks")
    finally:
        await store.aclose()


def _hammer_threads(limiter: Limiter, threads: int = THREADS) -> HammerResult:
    """``threads`` threads hit one key, three times the limit in all; the limiter's clock
    must stand still."""
    limit = limiter.algorithm.limit
    per_thread = 3 * limit // threads + 1
    admitted = [0] * threads
    failures: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                admitted[i] += limiter.hit("hammer:threads").allowed
        except BaseException as exc:  # re-raised below, in the calling thread
            failures.append(exc)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if failures:
        raise failures[0]
    remaining = limiter.peek("hammer:threads").remaining
    return HammerResult("threads", threads, threads * per_thread, sum(admitted), limit, remaining)


async def _hammer_tasks(limiter: AsyncLimiter, tasks: int = TASKS) -> HammerResult:
    """``tasks`` asyncio tasks hit one key, three times each or more; the limiter's clock must
    stand still."""
    per_task = max(3, 3 * limiter.algorithm.limit // tasks + 1)

    async def worker() -> int:
        return sum([(await limiter.hit("hammer:tasks")).allowed for _ in range(per_task)])

    admitted = sum(await asyncio.gather(*(worker() for _ in range(tasks))))
    remaining = (await limiter.peek("hammer:tasks")).remaining
    limit = limiter.algorithm.limit
    return HammerResult("tasks", tasks, tasks * per_task, admitted, limit, remaining)


# -- expiry audit and cleanup: the backend's own hooks, else the built-in fallbacks ----------


def keys_without_expiry(store: Any, prefix: str) -> list[str] | None:
    """The keys under ``prefix`` that never expire, or ``None`` when the store cannot tell.

    Uses the store's :class:`ReportsKeysWithoutExpiry` hook, else a built-in fallback.
    """
    if isinstance(store, ReportsKeysWithoutExpiry):
        return store.keys_without_expiry()
    if _is_memory(store):
        # Drop everything that expires at any time at all; what is left never expires.
        store.sweep(2**62)
        left = len(store)
        return [f"<{left} in-memory entries>"] if left else []
    client = _redis_client(store)
    if client is not None:
        return [_text(k) for k in _scan(client, prefix) if client.pttl(k) == -1]
    return None


def purge_prefix(store: Any, prefix: str) -> str:
    """Delete what ``store`` holds under ``prefix``; say what was done.

    Uses the store's :class:`PurgesPrefix` hook, else a built-in fallback; a store neither
    covers is left alone, and the message says so.
    """
    if not prefix:
        raise ConfigurationError("refusing to purge an empty prefix: it would delete everything")
    if isinstance(store, PurgesPrefix):
        return f"deleted {store.purge_prefix()} keys under {prefix!r}"
    if _is_memory(store):
        store.clear()
        return "nothing to delete (in-memory store of this run)"
    client = _redis_client(store)
    if client is not None:
        # One DEL per key: in a Redis Cluster the keys live in different slots.
        deleted = sum(client.delete(k) for k in list(_scan(client, prefix)))
        return f"deleted {deleted} keys under {prefix!r}"
    pool, layout = getattr(store, "pool", None), getattr(store, "layout", None)
    table = getattr(layout, "qualified_table", None)
    if pool is not None and isinstance(table, str) and hasattr(pool, "connection"):
        with pool.connection() as connection:
            cursor = connection.execute(
                f"DELETE FROM {table} WHERE starts_with(key, %s)", (prefix,)
            )
            return f"deleted {cursor.rowcount} rows under {prefix!r}"
    return f"not supported by {type(store).__name__}: keys under {prefix!r} remain"


def _is_memory(store: Any) -> bool:
    from backends.memory import MemoryBackend

    return isinstance(store, MemoryBackend)


def _redis_client(store: Any) -> Any:
    client = getattr(store, "client", None)
    if all(callable(getattr(client, name, None)) for name in ("scan_iter", "pttl", "delete")):
        return client
    return None


def _scan(client: Any, prefix: str) -> Iterator[Any]:
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    return iter(client.scan_iter(match=pattern, count=1000))


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
