"""The pure ASGI middleware and the Starlette per-route decorator, on real Starlette apps
driven through httpx."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from algorithms import FixedWindow, TokenBucket
from backends.memory import MemoryBackend
from limits_core import (
    AsyncBackend,
    AsyncLimiter,
    BackendError,
    ConfigurationError,
    Limiter,
    ManualClock,
    keys,
)
from limits_core.asgi import RateLimitMiddleware, rate_limit
from limits_core.gate import RateLimitStats, Reply
from tests.support.failing import StoppableBackend, dead_async_backend_fixture  # noqa: F401
from tests.support.http import rate_limit_fields

PEER = ("10.0.0.2", 40000)


def limiter(rate: str = "3/minute", backend: AsyncBackend | None = None) -> AsyncLimiter:
    return AsyncLimiter(
        FixedWindow(rate),
        MemoryBackend() if backend is None else backend,
        clock=ManualClock(1_700_000_000),
    )


class Calls:
    def __init__(self) -> None:
        self.count = 0


def make_app(calls: Calls, **middleware: Any) -> Starlette:
    async def home(request: Request) -> Response:
        calls.count += 1
        return PlainTextResponse("hello")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    routes = [Route("/", home), Route("/health", health), WebSocketRoute("/ws", ws)]
    return Starlette(routes=routes, middleware=[Middleware(RateLimitMiddleware, **middleware)])


@pytest.fixture
def calls() -> Calls:
    return Calls()


def client(app: Any, peer: tuple[str, int] = PEER) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=peer), base_url="http://testserver"
    )


async def test_app_wide_limit_then_429_without_calling_the_app(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter("3/minute"))
    async with client(app) as http:
        responses = [await http.get("/") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert calls.count == 3
    assert [rate_limit_fields(r.headers)["default"]["r"] for r in responses] == [2, 1, 0, 0]
    denied = responses[-1]
    assert rate_limit_fields(denied.headers) == {"default": {"q": 3, "w": 60, "r": 0, "t": 60}}
    assert denied.headers["retry-after"] == "60"
    assert denied.json() == {"detail": "Too Many Requests"}
    assert denied.headers["content-type"] == "application/json"
    assert "retry-after" not in responses[0].headers
    assert "x-ratelimit-limit" not in responses[0].headers


async def test_legacy_headers_on_opt_in(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter("2/minute"), legacy_headers=True)
    async with client(app) as http:
        first = await http.get("/")
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["x-ratelimit-reset"] == "60"


async def test_key_per_client_behind_trusted_proxy(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter("1/minute"), key=keys.client_ip(["10.0.0.0/8"]))
    async with client(app) as http:
        a = await http.get("/", headers={"x-forwarded-for": "203.0.113.7"})
        b = await http.get("/", headers={"x-forwarded-for": "203.0.113.8"})
        # the same client prepending a forged address is still the same client
        a_again = await http.get("/", headers={"x-forwarded-for": "1.1.1.1, 203.0.113.7"})
    assert (a.status_code, b.status_code, a_again.status_code) == (200, 200, 429)


async def test_untrusted_peer_cannot_spoof_through_the_middleware(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter("1/minute"), key=keys.client_ip(["10.0.0.0/8"]))
    async with client(app, peer=("203.0.113.50", 1)) as http:
        first = await http.get("/", headers={"x-forwarded-for": "198.51.100.1"})
        second = await http.get("/", headers={"x-forwarded-for": "198.51.100.2"})
    assert (first.status_code, second.status_code) == (200, 429)


async def test_garbage_forwarding_header_never_fails_the_request(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(calls, limiter=limiter("5/minute"), key=keys.client_ip(["10.0.0.0/8"]))
    async with client(app) as http:
        with caplog.at_level(logging.WARNING, logger="limits_core"):
            response = await http.get("/", headers={b"x-forwarded-for": b"\xff\x85[::1, \xc3\xa9"})
    assert response.status_code == 200
    assert any("malformed" in r.getMessage() for r in caplog.records)


async def test_exempt_paths_predicates_and_none_keys(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter("1/minute"), exempt=["/health", "/static/*"])
    async with client(app) as http:
        assert [(await http.get("/health")).status_code for _ in range(3)] == [200] * 3
        assert "ratelimit" not in (await http.get("/health")).headers
        assert [(await http.get("/")).status_code for _ in range(2)] == [200, 429]
    by_method = make_app(calls, limiter=limiter("1/minute"), exempt=lambda v: v.method == "HEAD")
    async with client(by_method) as http:
        assert [(await http.head("/")).status_code for _ in range(3)] == [200] * 3
    anonymous_free = make_app(calls, limiter=limiter("1/minute"), key=keys.user())
    async with client(anonymous_free) as http:
        assert [(await http.get("/")).status_code for _ in range(3)] == [200] * 3
    stats = RateLimitStats()
    counted = make_app(calls, limiter=limiter("1/minute"), exempt=["/health"], stats=stats)
    async with client(counted) as http:
        await http.get("/health")
        await http.get("/")
        await http.get("/")
    assert stats.snapshot() | {} == {
        **dict.fromkeys(RateLimitStats.FIELDS, 0), "exempt": 1, "allowed": 1, "denied": 1,
    }  # fmt: skip


async def test_cost_per_request(calls: Calls) -> None:
    def cost(view: Any) -> int:
        return int(view.header("x-tokens") or 1)

    app = make_app(calls, limiter=limiter("100/minute"), cost=cost)
    async with client(app) as http:
        big = await http.get("/", headers={"x-tokens": "70"})
        too_big = await http.get("/", headers={"x-tokens": "40"})
        small = await http.get("/", headers={"x-tokens": "30"})
        never = await http.get("/", headers={"x-tokens": "500"})
    assert [r.status_code for r in (big, too_big, small, never)] == [200, 429, 200, 429]
    assert rate_limit_fields(small.headers)["default"]["r"] == 0
    assert "retry-after" not in never.headers  # more than the limit: no wait would help


async def test_custom_deny_response(calls: Calls) -> None:
    plain = Reply(status=429, body=b"slow down", content_type="text/plain; charset=utf-8")
    app = make_app(calls, limiter=limiter("1/minute"), deny_response=plain, policy_name="api")
    async with client(app) as http:
        await http.get("/")
        denied = await http.get("/")
    assert (denied.status_code, denied.text) == (429, "slow down")
    assert denied.headers["content-type"] == "text/plain; charset=utf-8"
    assert rate_limit_fields(denied.headers)["api"]["r"] == 0

    def teapot(view: Any, decision: Any) -> Reply:
        body = json.dumps({"error": "quota", "path": view.path, "retry": decision.retry_after})
        return Reply(status=418, body=body.encode(), headers=(("X-Reason", "quota"),))

    app = make_app(calls, limiter=limiter("1/minute"), deny_response=teapot)
    async with client(app) as http:
        await http.get("/")
        denied = await http.get("/")
    assert denied.status_code == 418
    assert denied.json() == {"error": "quota", "path": "/", "retry": 60.0}
    assert denied.headers["x-reason"] == "quota"
    assert denied.headers["retry-after"] == "60"


async def test_lifespan_and_websocket_pass_through() -> None:
    started: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started.append("up")
        yield
        started.append("down")

    exhausted = limiter("1/minute")
    app = Starlette(
        routes=[WebSocketRoute("/ws", _echo_ws), Route("/", _hello)],
        middleware=[Middleware(RateLimitMiddleware, limiter=exhausted, key=keys.constant("all"))],
        lifespan=lifespan,
    )
    assert await _run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert started == ["up", "down"]
    async with client(app) as http:
        assert [(await http.get("/")).status_code for _ in range(2)] == [200, 429]
    for _ in range(3):  # websockets are never limited by the HTTP middleware
        sent = await _run_websocket(app, "/ws")
        assert sent == ["websocket.accept", "websocket.send", "websocket.close"]


async def _hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def _echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


async def _drive(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[str]:
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app(scope, receive, send)
    return sent


async def _run_lifespan(app: Any) -> list[str]:
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    return await _drive(app, scope, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])


async def _run_websocket(app: Any, path: str) -> list[str]:
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "path": path, "raw_path": path.encode(),
        "root_path": "", "scheme": "ws", "query_string": b"", "headers": [], "client": PEER,
        "server": ("testserver", 80), "subprotocols": [], "state": {},
    }  # fmt: skip
    return await _drive(app, scope, [{"type": "websocket.connect"}])


def test_configuration_errors() -> None:
    app = Starlette()
    sync = Limiter(FixedWindow("1/second"), MemoryBackend())
    bad: list[dict[str, Any]] = [
        {"limiter": sync},
        {"limiter": limiter(), "on_error": "ignore"},
        {"limiter": limiter(), "on_error": sync},
        {"limiter": limiter(), "cost": 0},
        {"limiter": limiter(), "key": "ip"},
        {"limiter": limiter(), "policy_name": "\n"},
        {"limiter": limiter(), "deny_response": b"no"},
        {"limiter": limiter(), "error_retry_after": 0},
        {"limiter": limiter(), "exempt": [3]},
    ]
    for options in bad:
        with pytest.raises(ConfigurationError):
            RateLimitMiddleware(app, **options)
    with pytest.raises(ConfigurationError):
        Reply(status=99)


# --- when the store fails -------------------------------------------------------------------


async def test_fail_open_logs_and_counts(
    calls: Calls, dead_async_backend: AsyncBackend, caplog: pytest.LogCaptureFixture
) -> None:
    stats = RateLimitStats()
    app = make_app(calls, limiter=limiter(backend=dead_async_backend), stats=stats)
    async with client(app) as http:
        with caplog.at_level(logging.WARNING, logger="limits_core"):
            responses = [await http.get("/") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert calls.count == 5
    assert "ratelimit" not in responses[0].headers  # no decision, no numbers
    assert stats.errors == stats.failed_open == 5
    assert sum("failing open" in r.getMessage() for r in caplog.records) == 5


async def test_fail_closed_gives_503_with_retry_after(
    calls: Calls, dead_async_backend: AsyncBackend, caplog: pytest.LogCaptureFixture
) -> None:
    stats = RateLimitStats()
    app = make_app(
        calls, limiter=limiter(backend=dead_async_backend), on_error="closed",
        error_retry_after=7, stats=stats,
    )  # fmt: skip
    async with client(app) as http:
        with caplog.at_level(logging.WARNING, logger="limits_core"):
            response = await http.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert calls.count == 0
    assert stats.errors == stats.failed_closed == 1
    assert any("failing closed" in r.getMessage() for r in caplog.records)


async def test_fallback_limiter_decides_while_the_store_is_down(
    calls: Calls, dead_async_backend: AsyncBackend
) -> None:
    stats = RateLimitStats()
    fallback = limiter("2/minute")
    app = make_app(
        calls, limiter=limiter("100/minute", backend=dead_async_backend), on_error=fallback,
        stats=stats,
    )  # fmt: skip
    async with client(app) as http:
        responses = [await http.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert rate_limit_fields(responses[0].headers)["default"]["q"] == 2  # the fallback's
    assert stats.fallbacks == stats.errors == 3
    assert (stats.allowed, stats.denied) == (2, 1)


async def test_store_stops_and_recovers(calls: Calls) -> None:
    store = StoppableBackend()
    stats = RateLimitStats()
    app = make_app(calls, limiter=limiter("2/minute", backend=store), stats=stats)
    async with client(app) as http:
        assert (await http.get("/")).status_code == 200
        store.stop()
        assert [(await http.get("/")).status_code for _ in range(3)] == [200] * 3
        store.start()
        assert [(await http.get("/")).status_code for _ in range(2)] == [200, 429]
    assert stats.snapshot()["failed_open"] == 3
    assert store.failures == 3


async def test_fallback_failing_too_fails_open(calls: Calls) -> None:
    down, also_down = StoppableBackend(), StoppableBackend()
    down.stop()
    also_down.stop()
    stats = RateLimitStats()
    app = make_app(
        calls, limiter=limiter(backend=down), on_error=limiter(backend=also_down), stats=stats
    )
    async with client(app) as http:
        assert (await http.get("/")).status_code == 200
    assert (stats.errors, stats.fallback_errors, stats.failed_open) == (2, 1, 1)


class _BrokenBackend(StoppableBackend):
    def decide(self, *args: Any) -> Any:
        raise RuntimeError("a bug, not an outage")


async def test_only_backend_errors_trigger_on_error(calls: Calls) -> None:
    app = make_app(calls, limiter=limiter(backend=_BrokenBackend()), on_error="open")
    async with client(app) as http:
        with pytest.raises(RuntimeError, match="a bug"):
            await http.get("/")


async def test_any_backend_error_triggers_on_error(calls: Calls) -> None:
    # a full MemoryBackend in "error" mode raises BackendError (not BackendUnavailable)
    full = limiter("5/minute", backend=MemoryBackend(max_keys=1, when_full="error"))
    stats = RateLimitStats()
    app = make_app(calls, limiter=full, key=keys.client_ip(["10.0.0.0/8"]), stats=stats)
    async with client(app) as http:
        first = await http.get("/", headers={"x-forwarded-for": "203.0.113.1"})
        second = await http.get("/", headers={"x-forwarded-for": "203.0.113.2"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert "ratelimit" in first.headers
    assert "ratelimit" not in second.headers
    assert stats.failed_open == 1
    with pytest.raises(BackendError):
        await full.hit("another")


# --- per route ------------------------------------------------------------------------------


async def test_rate_limit_decorator_per_route_and_route_template() -> None:
    per_route = rate_limit(limiter("2/minute"), key=keys.route(), policy_name="items")

    @per_route
    async def item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["item_id"]})

    @rate_limit(limiter("1/minute"))
    def sync_endpoint(request: Request) -> Response:
        return PlainTextResponse("sync")

    async def free(request: Request) -> Response:
        return PlainTextResponse("free")

    app = Starlette(
        routes=[Route("/items/{item_id}", item), Route("/sync", sync_endpoint), Route("/", free)]
    )
    async with client(app) as http:
        # one key for the route template, whatever the item
        codes = [(await http.get(f"/items/{i}")).status_code for i in range(3)]
        assert codes == [200, 200, 429]
        ok = await http.get("/sync")
        assert (ok.status_code, ok.text) == (200, "sync")
        assert rate_limit_fields(ok.headers)["default"] == {"q": 1, "w": 60, "r": 0, "t": 60}
        assert (await http.get("/sync")).status_code == 429
        assert [(await http.get("/")).status_code for _ in range(5)] == [200] * 5
    assert per_route.stats.allowed == 2
    assert per_route.stats.denied == 1


async def test_app_wide_and_per_route_headers_combine_into_valid_lists() -> None:
    bucket = AsyncLimiter(TokenBucket("10/second", burst=20), MemoryBackend())

    @rate_limit(bucket, policy_name="burst")
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[
            Middleware(RateLimitMiddleware, limiter=limiter("100/hour"), policy_name="app")
        ],
    )
    async with client(app) as http:
        response = await http.get("/")
    fields = rate_limit_fields(response.headers)
    assert fields["burst"] == {"q": 20, "w": 2, "r": 19, "t": 1}
    assert fields["app"] == {"q": 100, "w": 3600, "r": 99, "t": 3600}


async def test_a_policy_reports_one_header_member_per_limit() -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    limiter = AsyncLimiter([FixedWindow("2/second"), FixedWindow("100/day")], MemoryBackend())
    app = RateLimitMiddleware(
        Starlette(routes=[Route("/", home)]), limiter=limiter, key=keys.constant("all")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.get("/")
        assert first.headers["RateLimit-Policy"] == '"2/second";q=2;w=1, "100/day";q=100;w=86400'
        assert first.headers["RateLimit"] == '"2/second";r=1;t=1, "100/day";r=99;t=86400'
        await client.get("/")
        denied = await client.get("/")
        assert denied.status_code == 429
        # The daily limit consumed nothing for the denied request: 98 are left.
        assert denied.headers["RateLimit"].startswith('"2/second";r=0;t=1, "100/day";r=98;')
