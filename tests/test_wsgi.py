"""The WSGI middleware on a plain WSGI app, driven through Werkzeug's test client."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.test import Client

from algorithms import FixedWindow
from backends.memory import MemoryBackend
from limits_core import AsyncLimiter, Backend, ConfigurationError, Limiter, ManualClock, keys
from limits_core.gate import RateLimitStats, Reply
from limits_core.wsgi import RateLimitMiddleware
from tests.support.failing import StoppableBackend, dead_backend_fixture  # noqa: F401
from tests.support.http import rate_limit_fields, sf_list

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LB = {"REMOTE_ADDR": "10.0.0.2"}


def limiter(rate: str = "3/minute", backend: Backend | None = None) -> Limiter:
    return Limiter(
        FixedWindow(rate),
        MemoryBackend() if backend is None else backend,
        clock=ManualClock(1_700_000_000),
    )


class App:
    """A bare WSGI app that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("RateLimit", '"inner";r=1;t=1')])
        return [b"hello"]


def wrap(app: App, **options: Any) -> Client:
    return Client(RateLimitMiddleware(app, **options))


def test_app_wide_limit_then_429() -> None:
    app = App()
    http = wrap(app, limiter=limiter("2/minute"), legacy_headers=True)
    responses = [http.get("/", environ_overrides=LB) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert app.calls == 2
    # the app's own RateLimit line and ours form one valid list
    assert rate_limit_fields_lenient(responses[0].headers)["default"] == {"r": 1, "t": 60}
    denied = responses[2]
    assert denied.status == "429 Too Many Requests"
    assert denied.json == {"detail": "Too Many Requests"}
    assert denied.headers["Retry-After"] == "60"
    assert rate_limit_fields(denied.headers) == {"default": {"q": 2, "w": 60, "r": 0, "t": 60}}
    assert denied.headers["X-RateLimit-Remaining"] == "0"
    assert denied.headers["Content-Length"] == str(len(denied.data))


def rate_limit_fields_lenient(headers: Any) -> dict[str, dict[str, Any]]:
    """The RateLimit list alone (the bare app sends no RateLimit-Policy for its member)."""
    return dict(sf_list(headers.getlist("RateLimit")))


def test_trusted_proxy_and_spoofing() -> None:
    http = wrap(App(), limiter=limiter("1/minute"), key=keys.client_ip(["10.0.0.0/8"]))
    a = http.get("/", environ_overrides=LB, headers={"X-Forwarded-For": "203.0.113.7"})
    b = http.get("/", environ_overrides=LB, headers={"X-Forwarded-For": "203.0.113.8"})
    forged = http.get(
        "/", environ_overrides=LB, headers={"X-Forwarded-For": "9.9.9.9, 203.0.113.7"}
    )
    assert (a.status_code, b.status_code, forged.status_code) == (200, 200, 429)
    direct = {"REMOTE_ADDR": "198.51.100.9"}
    one = http.get("/", environ_overrides=direct, headers={"X-Forwarded-For": "1.1.1.1"})
    two = http.get("/", environ_overrides=direct, headers={"X-Forwarded-For": "2.2.2.2"})
    assert (one.status_code, two.status_code) == (200, 429)


def test_forwarded_header_with_quoted_ipv6() -> None:
    strategy = keys.client_ip(["10.0.0.0/8"], proxy_header="forwarded")
    http = wrap(App(), limiter=limiter("1/minute"), key=strategy)
    headers = {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'}
    same_64 = {"Forwarded": 'for="[2001:db8:cafe::99]"'}
    assert http.get("/", environ_overrides=LB, headers=headers).status_code == 200
    assert http.get("/", environ_overrides=LB, headers=same_64).status_code == 429


def test_exempt_and_cost_and_custom_reply() -> None:
    app = App()
    reply = Reply(status=429, body=b"busy", content_type="text/plain")
    http = wrap(
        app, limiter=limiter("10/minute"), exempt=["/health"], deny_response=reply,
        cost=lambda view: 6 if view.method == "POST" else 1,
    )  # fmt: skip
    assert [http.get("/health").status_code for _ in range(20)] == [200] * 20
    assert http.post("/").status_code == 200
    denied = http.post("/")
    assert (denied.status_code, denied.data) == (429, b"busy")
    assert http.get("/").status_code == 200


def test_fail_open(dead_backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    stats = RateLimitStats()
    http = wrap(app, limiter=limiter(backend=dead_backend), stats=stats)
    with caplog.at_level(logging.WARNING, logger="limits_core"):
        codes = [http.get("/").status_code for _ in range(4)]
    assert codes == [200] * 4
    assert app.calls == 4
    assert stats.errors == stats.failed_open == 4
    assert sum("failing open" in r.getMessage() for r in caplog.records) == 4


def test_fail_closed(dead_backend: Backend) -> None:
    app = App()
    middleware = RateLimitMiddleware(
        app, limiter=limiter(backend=dead_backend), on_error="closed", error_retry_after=3
    )
    response = Client(middleware).get("/")
    assert response.status == "503 Service Unavailable"
    assert response.headers["Retry-After"] == "3"
    assert app.calls == 0
    assert middleware.stats.failed_closed == 1


def test_fallback(dead_backend: Backend) -> None:
    middleware = RateLimitMiddleware(
        App(), limiter=limiter(backend=dead_backend), on_error=limiter("1/minute")
    )
    http = Client(middleware)
    assert [http.get("/").status_code for _ in range(2)] == [200, 429]
    assert middleware.stats.fallbacks == 2


def test_store_recovers() -> None:
    store = StoppableBackend()
    middleware = RateLimitMiddleware(App(), limiter=limiter("1/minute", backend=store))
    http = Client(middleware)
    store.stop()
    assert http.get("/").status_code == 200
    store.start()
    assert [http.get("/").status_code for _ in range(2)] == [200, 429]
    assert middleware.stats.snapshot()["failed_open"] == 1


def test_requires_a_sync_limiter() -> None:
    async_limiter = AsyncLimiter(FixedWindow("1/second"), MemoryBackend())
    with pytest.raises(ConfigurationError):
        RateLimitMiddleware(App(), limiter=async_limiter)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RateLimitMiddleware(App(), limiter=limiter(), on_error=async_limiter)
