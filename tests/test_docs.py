"""Every Python sample in the README and the docs runs.

A sample whose first line is ``# needs: redis`` or ``# needs: postgres`` runs only where that
server answers (and fails the run under CI=true when it does not).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.servers import require

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _samples() -> list[pytest.ParameterSet]:
    samples = []
    for page in PAGES:
        for number, match in enumerate(FENCE.finditer(page.read_text()), start=1):
            name = f"{page.relative_to(ROOT)}#{number}"
            samples.append(pytest.param(match.group(1), id=name))
    return samples


SAMPLES = _samples()


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize("code", SAMPLES)
def test_sample_runs(code: str, request: pytest.FixtureRequest) -> None:
    first = code.splitlines()[0] if code else ""
    if first.startswith("# needs: redis"):
        require(request.config.getoption("--redis-url"), 6379, "Redis")
    elif first.startswith("# needs: postgres"):
        require(request.config.getoption("--postgres-dsn"), 5432, "PostgreSQL")
    exec(compile(code, "<doc sample>", "exec"), {"__name__": "__doc_sample__"})
