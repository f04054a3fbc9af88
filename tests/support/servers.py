"""Where the test servers are, and what to do when one is absent.

Locally a missing server skips its tests with the reason; under ``CI=true`` it fails them, so a
green CI always means the backend tests ran.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_DSN = "postgresql://root@127.0.0.1:5432/test"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to the URL's host and port succeeds."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(url: str, default_port: int, what: str) -> str:
    """Return ``url`` if its server answers; otherwise skip (locally) or fail (in CI)."""
    if reachable(url, default_port):
        return url
    message = f"{what} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires every backend server", pytrace=False)
    pytest.skip(f"{message}; start it with scripts/services.sh")
