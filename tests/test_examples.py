"""The examples start with the one command their docstrings give, and answer over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http import free_port, rate_limit_fields

ROOT = Path(__file__).resolve().parents[1]


def _serve(command: list[str], port: int) -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIMITS_CORE_REDIS_URL", None)  # the documented default: the in-memory backend
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=5)
                    pytest.fail(f"{command} did not start:\n{err.decode(errors='replace')}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(params=["fastapi", "flask"])
def example(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    if request.param == "fastapi":
        command = [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app",
                   "--no-proxy-headers", "--port", str(port)]  # fmt: skip
    else:
        command = [sys.executable, "-m", "flask", "--app", "examples.flask_app", "run",
                   "--port", str(port)]  # fmt: skip
    yield from _serve(command, port)


def test_example_starts_with_its_documented_command(example: str) -> None:
    with httpx.Client(base_url=example) as http:
        response = http.get("/", headers={"X-Forwarded-For": "203.0.113.7"})
        assert response.status_code == 200
        assert rate_limit_fields(response.headers)["app"]["q"] == 60
        search = http.get("/search", params={"q": "x"}, headers={"X-User": "luis"})
        assert set(rate_limit_fields(search.headers)) == {"app", "search"}
