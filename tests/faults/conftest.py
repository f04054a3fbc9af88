"""Fixtures of the fault suite: its own servers, and the report written when asked.

Set ``LIMITS_CORE_FAULTS_REPORT=path.json`` to have the suite write every measured result
there at the end of the session (``python -m tests.faults.report`` runs the scenarios without
pytest and prints the table).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import PolicyResult
from tests.faults.report import write_report
from tests.faults.scenarios import Servers, pg_cluster

_RESULTS: list[PolicyResult] = []


@pytest.fixture(scope="session")
def fault_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with pg_cluster() as cluster:
        yield Servers(Path(tmp_path_factory.mktemp("faults")), cluster)


@pytest.fixture(scope="session")
def fault_results() -> Iterator[list[PolicyResult]]:
    yield _RESULTS
    target = os.environ.get("LIMITS_CORE_FAULTS_REPORT")
    if target and _RESULTS:
        write_report(_RESULTS, Path(target))
