"""Options shared by the test suite (tests/) and the benchmark suite (benchmarks/)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.servers import DEFAULT_POSTGRES_DSN, DEFAULT_REDIS_URL, IN_CI

settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# ci runs every property on every backend (sync and async, coalesced or not) within the CI's
# time budget; HYPOTHESIS_MAX_EXAMPLES raises it for a longer hunt.
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-url",
        default=os.environ.get("LIMITS_CORE_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis server for backend tests (env LIMITS_CORE_REDIS_URL)",
    )
    parser.addoption(
        "--postgres-dsn",
        default=os.environ.get("LIMITS_CORE_POSTGRES_DSN", DEFAULT_POSTGRES_DSN),
        help="PostgreSQL server for backend tests (env LIMITS_CORE_POSTGRES_DSN)",
    )
