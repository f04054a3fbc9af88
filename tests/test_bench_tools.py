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
