"""The load runs for a moment each, so that the documented commands cannot rot. Nothing here
is timed: the figures of a real run come from the commands themselves (docs/reliability.md)."""

from __future__ import annotations

import pytest

from benchmarks.load import churn, http
from tests.support.servers import DEFAULT_REDIS_URL, require


def test_churn_quick_mode_keeps_the_store_bounded() -> None:
    figures = churn.run(keys=30_000, per_second=5_000, samples=6)
    assert len(figures["samples"]) == 6
    # About one second of keys is alive; expired ones are reclaimed as new ones arrive.
    assert figures["most_stored"] <= 3 * 5_000
    assert figures["samples"][-1]["keys_sent"] == 30_000


@pytest.mark.redis
def test_http_quick_mode_limits_every_client(request: pytest.FixtureRequest) -> None:
    url = require(request.config.getoption("--redis-url", DEFAULT_REDIS_URL), 6379, "Redis")
    figures = http.run(seconds=2, processes=1, connections=4, clients=5, rate="5/10s",
                       redis_url=url)  # fmt: skip
    assert figures["requests"] > 0
    assert figures["errors"] == 0, figures
    assert set(figures["statuses"]) == {"200", "429"}, figures
    assert figures["most_admitted_one_client"] <= figures["bound_one_client"], figures
    assert figures["admitted"] <= figures["admitted_bound"], figures
