"""Faults under a steady load, for each ``on_error`` policy: what callers get, how long they
wait at worst, and that nobody is let through nor counted twice while the store is healthy.

Run alone with ``pytest -m faults``; ``LIMITS_CORE_FAULTS_REPORT=out.json`` writes the
measured table (see ``tests/faults/report.py``).
"""

from __future__ import annotations

import pytest

from tests.faults.harness import PolicyResult
from tests.faults.scenarios import SCENARIOS, Scenario, Servers

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _param(scenario: Scenario) -> object:
    mark = pytest.mark.redis if scenario.store == "redis" else pytest.mark.postgres
    return pytest.param(scenario, id=scenario.name, marks=mark)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
async def test_fault_under_load(
    scenario: Scenario, fault_servers: Servers, fault_results: list[PolicyResult]
) -> None:
    results = await scenario.run(fault_servers)
    fault_results.extend(results)
    by_policy = {r.policy: r for r in results}
    for result in results:
        figures = result.summary()
        # Nothing escapes the gate: store failures become the policy's outcome.
        assert not figures["raised"], figures
        # Every store error is a typed limits-core error.
        assert set(result.errors) <= {"BackendUnavailable", "BackendError"}, figures
        # The configured timeouts bound the wait, even while the store stalls for longer
        # (not counting the time this process waited for a CPU, measured apart).
        assert result.worst_wait <= scenario.bound, figures
        # While the store is healthy, nobody gets past the limit.
        assert result.healthy_slots_exist(), figures
        assert result.over_admission(healthy=True) == 0, figures
        # No request is counted twice; a live store forgets nothing.
        assert result.double_counts == 0, figures
        if scenario.keeps_state:
            assert result.lost_counts == 0, figures
        # The store served decisions again after the fault.
        assert result.decided_after_fault() > 0, figures
        if scenario.no_errors:  # but a process descheduled past its timeout times out
            assert sum(result.errors.values()) == result.errors_while_starved, figures
        else:
            assert result.errors, f"the fault caused no error at all: {figures}"
    # Each policy handled its failures its own way, and only that way.
    open_, closed, fallback = (by_policy[p].summary() for p in ("open", "closed", "fallback"))
    assert closed["passed_open"] == fallback["passed_open"] == 0
    assert open_["answered_503"] == fallback["answered_503"] == 0
    assert open_["fallback_decisions"] == closed["fallback_decisions"] == 0
    for figures in (open_, closed, fallback):
        handled = figures["passed_open"] + figures["answered_503"] + figures["fallback_decisions"]
        assert handled == sum(figures["errors"].values()), figures
