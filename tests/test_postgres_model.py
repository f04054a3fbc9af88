"""Both PostgreSQL backends agree with the reference model, decision by decision.

Hypothesis generates programs of hits, peeks, resets and purges on two keys, with time steps
that land on window boundaries, repeat instants and go backwards, and costs from 1 to far above
the limit. Each program runs on the pure ``step()`` of the algorithm and on a backend (called
directly, not through a limiter, so the backend's own handling of every cost is tested); every
decision must be equal, and at the end the stored row must hold the model's state and expire no
earlier than the model says.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorithms import GCRA, FixedWindow, LeakyBucket, SlidingLog, SlidingWindowCounter, TokenBucket
from backends.postgres import AsyncPostgresBackend, PostgresBackend
from backends.postgres.common import Layout
from limits_core import Rate
from limits_core.algorithm import Algorithm
from limits_core.rate import MAX_LIMIT
from tests.support.postgres_fixtures import drop_layout, random_table

pytestmark = pytest.mark.postgres

ALGORITHMS: dict[str, Algorithm] = {
    "fixed_window": FixedWindow("5/10s"),
    "fixed_window_odd": FixedWindow("3/1.5s"),
    "sliding_log": SlidingLog("5/10s"),
    "sliding_log_odd": SlidingLog("4/1.5s"),
    "token_bucket": TokenBucket("5/10s", burst=7),
    "token_bucket_odd": TokenBucket("7/3s", burst=4),
    "token_bucket_fine": TokenBucket(Rate(3, 0.000007), burst=2),
    "token_bucket_huge": TokenBucket(Rate(MAX_LIMIT, 7 * 86_400.0), burst=MAX_LIMIT // 1000),
    "sliding_window_counter": SlidingWindowCounter("5/10s"),
    "sliding_window_counter_odd": SlidingWindowCounter("5/7s"),
    "sliding_window_counter_fine": SlidingWindowCounter(Rate(3, 0.000007)),
    "sliding_window_counter_huge": SlidingWindowCounter(Rate(104_249, 86_400.0)),
    "gcra": GCRA("5/10s", burst=7),
    "gcra_odd": GCRA("7/10s", burst=4),
    "gcra_fine": GCRA(Rate(3, 0.000007), burst=2),
    "gcra_huge": GCRA(Rate(MAX_LIMIT, 7 * 86_400.0), burst=MAX_LIMIT // 1000),
    "leaky_bucket": LeakyBucket("5/10s", capacity=7),
    "leaky_bucket_odd": LeakyBucket("3/7s", capacity=6),
    "leaky_bucket_fine": LeakyBucket(Rate(3, 0.000007), capacity=2),
    "leaky_bucket_huge": LeakyBucket(Rate(MAX_LIMIT, 7 * 86_400.0), capacity=MAX_LIMIT // 1000),
}

START_US = 1_700_000_000_000_000


def _period_us(algorithm: Algorithm) -> int:
    return int(getattr(algorithm, "rate").period_us)  # noqa: B009 - every algorithm here has one


@st.composite
def programs(draw: st.DrawFn, algorithm: Algorithm) -> list[tuple[str, int, int, int]]:
    """``[(op, time_us, cost, key)]``: absolute times, so purges can look ahead."""
    period = _period_us(algorithm)
    limit = algorithm.limit
    step = st.one_of(
        st.sampled_from([0, 0, 1, -1, period - 1, period, period + 1, period // 3, -period]),
        st.integers(-period // 2, 2 * period),
    )
    cost = st.one_of(
        st.sampled_from([1, 1, 1, 2, limit, limit + 1, 10**15]), st.integers(1, limit + 2)
    )
    op = st.sampled_from(["hit"] * 6 + ["peek"] * 2 + ["reset", "purge"])
    now = START_US
    program = []
    for _ in range(draw(st.integers(1, 25))):
        now = max(0, now + draw(step))
        program.append((draw(op), now, draw(cost), draw(st.integers(0, 1))))
    return program


def run_program(
    algorithm: Algorithm,
    program: list[tuple[str, int, int, int]],
    decide: Callable[[str, int, int, bool], Any],
    reset: Callable[[str], None],
    purge: Callable[[int], int],
) -> dict[str, tuple[Any, int]]:
    """Run ``program`` on the backend and on the model; return the model's states."""
    keys = [f"{uuid.uuid4().hex}:{i}" for i in range(2)]
    model: dict[str, tuple[Any, int]] = {}
    for index, (op, now, cost, which) in enumerate(program):
        key = keys[which]
        if op == "reset":
            reset(key)
            model.pop(key, None)
        elif op == "purge":
            # Purging at a time no later decision precedes can change no decision.
            purge(min(t for _, t, _, _ in program[index:]))
        else:
            state = model.get(key, (None, 0))[0]
            expected, new_state, expires_at = algorithm.step(
                state, now, min(cost, algorithm.limit + 1), op == "hit"
            )
            got = decide(key, cost, now, op == "hit")
            assert got == expected, (index, op, now, cost, state)
            if op == "hit" and expected.allowed:
                model[key] = (new_state, expires_at)
    return {key: model[key] for key in keys if key in model}


def _runs(state: Any) -> list[tuple[int, int]]:
    """A model sliding-log state ``(times, totals, lo, hi)`` as (time, cost) runs, equal times
    merged: the form the row stores."""
    times, totals, lo, hi = state
    runs: list[tuple[int, int]] = []
    for i in range(lo, hi):
        cost = totals[i] - (totals[i - 1] if i else 0)
        if runs and runs[-1][0] == times[i]:
            runs[-1] = (times[i], runs[-1][1] + cost)
        else:
            runs.append((times[i], cost))
    return runs


def check_rows(
    algorithm: Algorithm, rows: dict[str, tuple[Any, ...]], model: dict[str, tuple[Any, int]]
) -> None:
    """The stored rows hold the model's states and expire no earlier than the model says."""
    for key, (state, model_expiry) in model.items():
        row = rows.get(key)
        if row is None:  # purged: only when it no longer mattered (checked by the decisions)
            continue
        n, t, log_t, log_n, expires_at = row
        if isinstance(algorithm, SlidingLog):
            assert list(zip(log_t, log_n, strict=True)) == _runs(state)
            assert (n, t) == (sum(log_n), log_t[-1])
        elif isinstance(algorithm, FixedWindow | GCRA):
            assert (t, n) == state
        elif isinstance(algorithm, SlidingWindowCounter):
            assert (t, log_n[0], n) == state
        else:
            assert (n, t) == state
        assert model_expiry <= expires_at < model_expiry + 2**20


@pytest.fixture(scope="module")
def sync_backend(postgres_dsn: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(postgres_dsn, table=random_table(), prefix="model:")
    yield backend
    backend.close()
    drop_layout(postgres_dsn, backend.layout)


@pytest.fixture(scope="module", params=[True, False], ids=["coalesced", "uncoalesced"])
def async_backend(
    request: pytest.FixtureRequest, postgres_dsn: str
) -> Iterator[tuple[asyncio.Runner, AsyncPostgresBackend]]:
    runner = asyncio.Runner()
    backend = AsyncPostgresBackend(
        postgres_dsn, table=random_table(), prefix="model:", coalesce=request.param
    )
    yield runner, backend
    runner.run(backend.aclose())
    runner.close()
    drop_layout(postgres_dsn, backend.layout)


def _rows(dsn: str, layout: Layout, keys: list[str]) -> dict[str, tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        cursor = connection.execute(
            f"SELECT key, n, t, log_t, log_n, expires_at FROM {layout.qualified_table} "
            "WHERE key = ANY(%s)",
            (keys,),
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_sync_backend_agrees_with_model(
    name: str, sync_backend: PostgresBackend, postgres_dsn: str
) -> None:
    algorithm = ALGORITHMS[name]

    @given(programs(algorithm))
    def check(program: list[tuple[str, int, int, int]]) -> None:
        model = run_program(
            algorithm,
            program,
            lambda key, cost, now, consume: sync_backend.decide(algorithm, key, cost, now, consume),
            lambda key: sync_backend.reset(algorithm, key),
            lambda now: sync_backend.purge_expired(now_us=now, batch_size=3),
        )
        prefix = f"model:{algorithm.namespace}:"
        rows = _rows(postgres_dsn, sync_backend.layout, [prefix + key for key in model])
        check_rows(algorithm, {k[len(prefix) :]: v for k, v in rows.items()}, model)

    check()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_async_backend_agrees_with_model(
    name: str, async_backend: tuple[asyncio.Runner, AsyncPostgresBackend], postgres_dsn: str
) -> None:
    algorithm = ALGORITHMS[name]
    runner, backend = async_backend

    @given(programs(algorithm))
    def check(program: list[tuple[str, int, int, int]]) -> None:
        model = run_program(
            algorithm,
            program,
            lambda key, cost, now, consume: runner.run(
                backend.adecide(algorithm, key, cost, now, consume)
            ),
            lambda key: runner.run(backend.areset(algorithm, key)),
            lambda now: runner.run(backend.purge_expired(now_us=now, batch_size=3)),
        )
        prefix = f"model:{algorithm.namespace}:"
        rows = _rows(postgres_dsn, backend.layout, [prefix + key for key in model])
        check_rows(algorithm, {k[len(prefix) :]: v for k, v in rows.items()}, model)

    check()
