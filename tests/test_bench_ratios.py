"""``python -m benchmarks.ratios``: pytest-benchmark JSON to Markdown ratio tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.ratios import load_groups, main, markdown
from tests.support.cli import ROOT


def _bench(group: str, name: str, median: float) -> dict[str, Any]:
    return {"group": group, "name": name, "stats": {"median": median, "ops": 1 / median}}


def test_ratios_of_ours_to_peers_and_floors() -> None:
    document = {
        "benchmarks": [
            _bench("sync hot", "raw seed", 1 / 20_000),
            _bench("sync hot", "limits-core FixedWindow", 1 / 15_000),
            _bench("sync hot", "limits FixedWindow", 1 / 10_000),
            _bench("sync hot", "limits FixedWindow", 1 / 5_000),  # repeats: median 7,500
            _bench("sync hot", "limits FixedWindow", 1 / 12_000),
            _bench("async x50 hot", "limits-core FixedWindow (async)", 1 / 1_000),
            _bench("async x50 hot", "raw seed (async)", 1 / 1_250),
            {"group": "sync hot", "name": "disabled", "stats": None},
        ]
    }
    sync, asynchronous = load_groups([document])
    assert sync.ours() == ["limits-core FixedWindow"]
    assert sync.peers() == ["limits FixedWindow"]
    assert sync.floors() == ["raw seed"]
    assert sync.rate("limits FixedWindow") == pytest.approx(10_000)
    assert asynchronous.rate("raw seed (async)") == pytest.approx(50 * 1_250)
    text = markdown([sync, asynchronous])
    assert "### sync hot" in text
    assert "### async x50 hot" in text
    assert "| FixedWindow | 15.0k/s | 1.50 | 0.75 |" in text
    assert "÷ limits FixedWindow (10.0k/s)" in text
    assert "÷ raw seed (20.0k/s)" in text
    assert "| FixedWindow (async) | 50.0k/s | 0.80 |" in text


def test_empty_input_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert main([str(path)]) == 1
    assert "no timed benchmarks" in capsys.readouterr().err


def test_on_a_quick_run_of_the_memory_suite(tmp_path: Path) -> None:
    pytest.importorskip("pytest_benchmark")
    pytest.importorskip("limits")
    saved = tmp_path / "memory.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_memory_bench.py",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "hot-allow or 10k-deny",
        f"--benchmark-json={saved}",
    ]
    quick = {**os.environ, "LIMITS_CORE_BENCH_ROUNDS": "3", "LIMITS_CORE_BENCH_REPEATS": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=quick)
    assert done.returncode == 0, done.stdout[-2000:]
    ratios = subprocess.run(
        [sys.executable, "-m", "benchmarks.ratios", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ratios.returncode == 0, ratios.stderr
    text = ratios.stdout
    assert "### memory x1000 hot-allow" in text
    assert "### memory x1000 10k-deny" in text
    for ours in ("FixedWindow", "SlidingLog", "TokenBucket"):
        assert f"\n| {ours} | " in text
    assert "÷ limits FixedWindow (" in text
    assert "÷ limits MovingWindow (" in text
    assert "In bold: the median ratio of adjacent rounds" in text


def test_paired_ratios_replace_the_quotient_of_medians() -> None:
    def paired(name: str, median: float, ratios: dict[str, float]) -> dict[str, Any]:
        return {**_bench("memory x1000 hot", name, median), "extra_info": {"paired": ratios}}

    document = {
        "benchmarks": [
            paired("limits-core FixedWindow", 1 / 600, {"limits FixedWindow": 2.5}),
            paired("limits-core FixedWindow", 1 / 400, {"limits FixedWindow": 2.1}),
            paired("limits-core FixedWindow", 1 / 500, {"limits FixedWindow": 2.2}),
            _bench("memory x1000 hot", "limits FixedWindow", 1 / 250),
            _bench("memory x1000 hot", "limits MovingWindow", 1 / 100),
        ]
    }
    (group,) = load_groups([document])
    assert group.rate("limits-core FixedWindow") == pytest.approx(500_000)
    text = markdown([group])
    # Paired: the median of 2.5, 2.1, 2.2; unpaired: 500k / 100k.
    assert "| FixedWindow | 500.0k/s | **2.20** | 5.00 |" in text
