"""End to end: the FastAPI example app served by a real uvicorn on a free loopback port,
driven over HTTP, once per backend (memory, and Redis when its backend and server exist)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn

from backends.memory import MemoryBackend
from examples.fastapi_app import create_app
from limits_core import AsyncBackend
from tests.support.http import free_port, rate_limit_fields
from tests.support.servers import require

BackendFactory = Callable[[str], AsyncBackend]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_backend(request: pytest.FixtureRequest) -> BackendFactory:
    """``make(prefix) -> AsyncBackend`` for the parametrized store, isolated per test."""
    if request.param == "memory":
        return lambda prefix: MemoryBackend()
    redis = pytest.importorskip("backends.redis")
    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    run = uuid.uuid4().hex

    def make(prefix: str) -> AsyncBackend:
        backend: AsyncBackend = redis.AsyncRedisBackend(url, prefix=f"test:e2e:{run}:{prefix}")
        return backend

    return make


@pytest.fixture
def server(make_backend: BackendFactory) -> Iterator[str]:
    """The example app on uvicorn in a thread; yields its base URL and stops it afterwards."""
    app = create_app(make_backend, app_rate="5/minute", route_rate="2/minute",
                     token_rate="1000/hour")  # fmt: skip
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, proxy_headers=False, log_level="warning",
        lifespan="on", ws="none",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_end_to_end_over_http(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        health = http.get("/health")
        assert health.json() == {"ok": True, "started": True}  # lifespan ran through
        assert "ratelimit" not in health.headers  # exempt

        # App-wide, per client behind the trusted proxy (the test is the proxy on 127.0.0.1).
        a = {"X-Forwarded-For": "203.0.113.7"}
        responses = [http.get("/", headers=a) for _ in range(6)]
        assert [r.status_code for r in responses] == [200] * 5 + [429]
        assert [rate_limit_fields(r.headers)["app"]["r"] for r in responses] == [4, 3, 2, 1, 0, 0]
        denied = responses[-1]
        fields = rate_limit_fields(denied.headers)["app"]
        assert (fields["q"], fields["w"]) == (5, 60)
        assert 0 < fields["t"] <= 60
        assert 0 < int(denied.headers["retry-after"]) <= 60
        assert denied.json() == {"detail": "Too Many Requests"}
        # Prepending a forged address does not make a new client ...
        forged = http.get("/", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7"})
        assert forged.status_code == 429
        # ... but a different client behind the proxy has its own budget.
        assert http.get("/", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200

        # Per route, by user: 2/minute on /search, on top of the app-wide limit.
        luis = {"X-Forwarded-For": "198.51.100.1", "X-User": "luis"}
        searches = [http.get("/search", params={"q": "x"}, headers=luis) for _ in range(3)]
        assert [r.status_code for r in searches] == [200, 200, 429]
        both = rate_limit_fields(searches[0].headers)
        assert (both["search"]["r"], both["app"]["r"]) == (1, 4)

        # User + provider token budget, cost = tokens.
        ana = {"X-Forwarded-For": "198.51.100.2", "X-User": "ana"}
        first = http.post("/chat", json={"prompt": "hi", "max_tokens": 700}, headers=ana)
        assert first.json()["tokens_left"] == 300
        second = http.post("/chat", json={"prompt": "hi", "max_tokens": 700}, headers=ana)
        assert second.status_code == 429
        assert rate_limit_fields(second.headers)["openai-tokens"]["r"] == 300
        bob = {"X-Forwarded-For": "198.51.100.3", "X-User": "bob"}
        assert http.post("/chat", json={"prompt": "hi"}, headers=bob).status_code == 200
