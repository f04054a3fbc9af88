"""The FastAPI dependency and the ASGI middleware on real FastAPI apps, driven through httpx."""

# No "from __future__ import annotations": FastAPI resolves endpoint annotations at runtime,
# and some of them name local variables.

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from algorithms import FixedWindow, TokenBucket
from backends.memory import MemoryBackend
from limits_core import AsyncBackend, AsyncLimiter, Decision, ManualClock, keys
from limits_core.asgi import (
    RateLimit,
    RateLimitedHTTPException,
    RateLimitMiddleware,
    rate_limit_exception_handler,
)
from limits_core.gate import Reply
from tests.support.failing import dead_async_backend_fixture  # noqa: F401
from tests.support.http import rate_limit_fields

PEER = ("10.0.0.2", 40000)


def limiter(rate: str, backend: AsyncBackend | None = None) -> AsyncLimiter:
    return AsyncLimiter(
        FixedWindow(rate),
        MemoryBackend() if backend is None else backend,
        clock=ManualClock(1_700_000_000),
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=PEER)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


class Chat(BaseModel):
    prompt: str
    max_tokens: int


def build_app(**dependency_options: Any) -> tuple[FastAPI, RateLimit, RateLimit]:
    app = FastAPI()
    per_route = RateLimit(limiter("2/minute"), key=keys.route(), **dependency_options)
    user = keys.user(lambda view: view.header("x-user"))
    budget = RateLimit(
        limiter("1000/hour"),
        key=keys.compose(user, keys.constant("openai")),
        policy_name="openai-tokens",
    )

    @app.get("/limited/{item_id}", dependencies=[Depends(per_route)])
    async def limited(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/free")
    async def free() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/chat")
    async def chat(body: Chat, request: Request, response: Response) -> dict[str, Any]:
        decision = await budget.check(request, response, cost=body.max_tokens)
        return {"remaining": None if decision is None else decision.remaining}

    return app, per_route, budget


async def test_dependency_limits_one_route_with_headers() -> None:
    app, per_route, _ = build_app()
    async with client(app) as http:
        responses = [await http.get(f"/limited/{i}") for i in range(3)]
        free = [await http.get("/free") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json() == {"id": 0}
    assert rate_limit_fields(responses[0].headers)["default"] == {"q": 2, "w": 60, "r": 1, "t": 60}
    denied = responses[2]
    assert denied.json() == {"detail": "Too Many Requests"}
    assert denied.headers["retry-after"] == "60"
    assert rate_limit_fields(denied.headers)["default"]["r"] == 0
    assert [r.status_code for r in free] == [200] * 5
    assert "ratelimit" not in free[0].headers
    assert (per_route.stats.allowed, per_route.stats.denied) == (2, 1)


async def test_token_budget_per_user_and_provider_is_cost_weighted() -> None:
    app, _, budget = build_app()
    async with client(app) as http:
        luis = {"x-user": "luis"}
        first = await http.post("/chat", json={"prompt": "hi", "max_tokens": 600}, headers=luis)
        second = await http.post("/chat", json={"prompt": "hi", "max_tokens": 600}, headers=luis)
        small = await http.post("/chat", json={"prompt": "hi", "max_tokens": 400}, headers=luis)
        other = await http.post(
            "/chat", json={"prompt": "hi", "max_tokens": 600}, headers={"x-user": "ana"}
        )
        anonymous = await http.post("/chat", json={"prompt": "hi", "max_tokens": 5000})
    assert first.json() == {"remaining": 400}
    assert second.status_code == 429
    assert rate_limit_fields(second.headers)["openai-tokens"]["r"] == 400
    assert small.json() == {"remaining": 0}
    assert other.json() == {"remaining": 400}  # another user has a budget of their own
    assert anonymous.json() == {"remaining": None}  # no user: exempt by this key
    assert budget.stats.exempt == 1


async def test_custom_deny_response_with_the_exception_handler() -> None:
    reply = Reply(status=429, body=b"<h1>slow down</h1>", content_type="text/html")
    app, _, _ = build_app(deny_response=reply)
    async with client(app) as http:
        await http.get("/limited/1")
        await http.get("/limited/1")
        default_rendering = await http.get("/limited/1")
    assert default_rendering.json() == {"detail": "Too Many Requests"}
    assert "ratelimit" in default_rendering.headers

    app, _, _ = build_app(deny_response=reply)
    app.add_exception_handler(RateLimitedHTTPException, rate_limit_exception_handler)
    async with client(app) as http:
        await http.get("/limited/1")
        await http.get("/limited/1")
        custom = await http.get("/limited/1")
    assert (custom.status_code, custom.text) == (429, "<h1>slow down</h1>")
    assert custom.headers["content-type"].startswith("text/html")
    assert custom.headers["retry-after"] == "60"
    assert rate_limit_fields(custom.headers)["default"]["r"] == 0


async def test_dependency_returns_the_decision() -> None:
    app = FastAPI()
    limit = RateLimit(AsyncLimiter(TokenBucket("1/second", burst=5), MemoryBackend()))

    @app.get("/")
    async def home(decision: Annotated[Decision | None, Depends(limit)]) -> dict[str, Any]:
        assert decision is not None
        return {"remaining": decision.remaining}

    async with client(app) as http:
        assert (await http.get("/")).json() == {"remaining": 4}


async def test_dependency_fails_closed_with_503(dead_async_backend: AsyncBackend) -> None:
    app, per_route, _ = build_app(on_error="closed")
    per_route.gate.limiter = limiter("2/minute", backend=dead_async_backend)
    async with client(app) as http:
        response = await http.get("/limited/1")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert per_route.stats.failed_closed == 1


async def test_dependency_fails_open(dead_async_backend: AsyncBackend) -> None:
    app, per_route, _ = build_app()
    per_route.gate.limiter = limiter("2/minute", backend=dead_async_backend)
    async with client(app) as http:
        codes = [(await http.get("/limited/1")).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert per_route.stats.failed_open == 3


async def test_middleware_on_a_fastapi_app_with_a_per_route_dependency() -> None:
    app, _, _ = build_app()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter("3/minute"),
        key=keys.client_ip(trusted_proxies=["10.0.0.0/8"]),
        policy_name="app",
        exempt=["/docs", "/openapi.json"],
    )
    async with client(app) as http:
        first = await http.get("/limited/1", headers={"x-forwarded-for": "203.0.113.7"})
        fields = rate_limit_fields(first.headers)
        assert fields["app"]["r"] == 2
        assert fields["default"]["r"] == 1
        codes = [
            (await http.get("/free", headers={"x-forwarded-for": "203.0.113.7"})).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        other = await http.get("/free", headers={"x-forwarded-for": "203.0.113.8"})
        assert other.status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200


@pytest.mark.parametrize("wrong", [object(), "limiter"])
def test_dependency_rejects_non_async_limiters(wrong: Any) -> None:
    from limits_core import ConfigurationError

    with pytest.raises(ConfigurationError):
        RateLimit(wrong)
