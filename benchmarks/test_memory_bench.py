"""In-memory backend against ``limits`` 5.x ``MemoryStorage``, on the same workloads.

Run: ``pytest benchmarks/test_memory_bench.py -p no:randomly`` (``python -m benchmarks.ratios``
turns its ``--benchmark-json`` into the ratio tables).

Each timed round is ``CALLS`` decisions, one call after another on one thread, and
pytest-benchmark reports the time per decision, so ``ops`` is decisions per second: timing a
thousand calls at once keeps the timer's own cost (comparable to a decision's) out of the
figures. Contenders alternate: the whole list is measured ``REPEATS`` times in turn, so a slow
phase of the machine hits them all, and the ratio tables take each contender's median. Before
each timing, a full garbage collection, so that no contender pays for another's garbage.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest

from benchmarks.workloads import MEMORY_CONTENDERS, WORKLOADS, Workload, memory_contender

#: Decisions per timed round, and rounds per benchmark.
CALLS = 1000
ROUNDS = int(os.environ.get("LIMITS_CORE_BENCH_ROUNDS", "60"))
REPEATS = int(os.environ.get("LIMITS_CORE_BENCH_REPEATS", "3"))
CASES = [(r, w, n) for r in range(REPEATS) for w in WORKLOADS for n in MEMORY_CONTENDERS]


def _id(value: object) -> str:
    return value.id if isinstance(value, Workload) else str(value)


@pytest.mark.parametrize(("repeat", "workload", "name"), CASES, ids=_id)
def test_memory(benchmark: Any, repeat: int, workload: Workload, name: str) -> None:
    if name.startswith("limits "):
        pytest.importorskip("limits")
    hit, close = memory_contender(name, workload)
    workload.prime(hit)
    keys = workload.key_cycle()
    benchmark.group = f"memory {workload.id}"
    benchmark.name = name
    gc.collect()
    benchmark.pedantic(lambda: hit(next(keys)), iterations=CALLS, rounds=ROUNDS, warmup_rounds=1)
    close()
