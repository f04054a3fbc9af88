"""``python -m benchmarks.report`` and ``python -m benchmarks.instructions``, quickly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import instructions, report


def test_the_page_appends_the_instruction_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"benchmarks": [], "datetime": "2026-12-04T05:00:00"}))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": []}))
    tables = tmp_path / "instructions.md"
    tables.write_text("\n### memory hot-allow: instructions per decision\n")
    assert report.main([str(suite), str(bench), "--instructions", str(tables)]) == 0
    page = capsys.readouterr().out
    assert page.startswith("# Benchmarks")
    assert page.endswith(
        "## Instructions per in-memory decision (`python -m benchmarks.instructions`)\n"
        "\n### memory hot-allow: instructions per decision\n"
    )


@pytest.mark.parametrize("name", ["limits-core TokenBucket", "limits MovingWindow"])
def test_the_child_decides_on_a_primed_workload(name: str) -> None:
    pytest.importorskip("limits")
    assert instructions.main(["--child", name, "10k-deny", "50"]) == 0


def test_without_valgrind_the_tool_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert instructions.main(["--workload", "hot-deny"]) == 2
    assert "valgrind is not installed" in capsys.readouterr().err


def test_the_tasks_table_gives_medians_ranges_and_ratios() -> None:
    def turns(*rates: float) -> list[dict[str, float]]:
        return [{"per_second": r, "p50_s": 0.001, "p99_s": 0.002} for r in rates]

    document = {
        "tasks": 50,
        "calls_per_task": 40,
        "keys": 10_000,
        "turns": 3,
        "contenders": {
            "limits-core FixedWindow (async)": turns(60_000, 30_000, 45_000),
            "limits-core FixedWindow (async, uncoalesced)": turns(15_000, 14_000, 16_000),
            "limits FixedWindow (async)": turns(9_000, 10_000, 11_000),
        },
    }
    text = report.tasks_section(document)
    assert "### Redis, 50 tasks x 40 calls on 10,000 keys" in text
    assert "| limits-core FixedWindow (async) | 45,000 [30,000-60,000] | 1.00 | 2.00 |" in text
    assert "3.00x limits-core FixedWindow (async, uncoalesced), 4.50x limits FixedWindow" in text
