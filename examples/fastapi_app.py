"""A FastAPI app with the four common rate limits.

Run it (from the repository root, with ``pip install '.[fastapi]' uvicorn``)::

    python -m examples.fastapi_app

or ``uvicorn examples.fastapi_app:app --no-proxy-headers`` (uvicorn must not rewrite the
client address itself: the app-wide limit below reads ``X-Forwarded-For`` through its own list
of trusted proxies). State lives in memory; with ``LIMITS_CORE_REDIS_URL`` set (and the Redis
backend installed) it lives in Redis and is shared by every worker.

Then try::

    curl -i localhost:8000/                                  # app-wide: 60/minute per client IP
    curl -i -H 'X-Forwarded-For: 203.0.113.7' localhost:8000/  # another client behind the proxy
    curl -i 'localhost:8000/search?q=rate'                    # per route: 5/minute per user or IP
    curl -i -X POST localhost:8000/chat -H 'X-User: luis' \\
         -H 'Content-Type: application/json' -d '{"prompt": "hi", "max_tokens": 800}'

1. **App-wide limit** (``RateLimitMiddleware``): every route except ``/health``, keyed by client
   IP. The server is assumed to sit behind a reverse proxy on this host, so 127.0.0.1 and ::1
   are trusted proxies: their ``X-Forwarded-For`` is honoured, anyone else's is ignored.
2. **Per-route limit** (``RateLimit`` dependency): ``/search`` has a tighter sliding-log limit,
   keyed by user when one is given, by IP otherwise.
3. **Per-IP key behind a trusted proxy**: ``keys.client_ip(trusted_proxies=...)`` in both.
4. **User + provider token budget**: ``/chat`` spends ``max_tokens`` from a per-user budget
   for the upstream provider (``user:luis|openai``), a cost-weighted token bucket.

For the demo the user is whatever ``X-User`` says; a real app would take it from a verified
token.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import AsyncBackend, AsyncLimiter, keys
from limits_core.asgi import RateLimit, RateLimitMiddleware
from limits_core.request import RequestView

logger = logging.getLogger("examples.fastapi_app")

#: The reverse proxies in front of this app (here: one on the same host).
TRUSTED_PROXIES = ["127.0.0.1", "::1"]

BackendFactory = Callable[[str], AsyncBackend]


def default_backend(prefix: str) -> AsyncBackend:
    """Redis when ``LIMITS_CORE_REDIS_URL`` is set and the Redis backend exists, else memory."""
    url = os.environ.get("LIMITS_CORE_REDIS_URL")
    if url:
        try:
            # Optional: imported only when asked, so the example runs without it.
            from backends.redis import AsyncRedisBackend  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            logger.warning("LIMITS_CORE_REDIS_URL is set but backends.redis is missing")
        else:
            backend: AsyncBackend = AsyncRedisBackend(url, prefix=f"limits-core-example:{prefix}")
            return backend
    return MemoryBackend()


def demo_user(view: RequestView) -> str | None:
    """Demo only: trust ``X-User``. A real app verifies a token here."""
    return view.header("x-user")


class ChatRequest(BaseModel):
    prompt: str
    max_tokens: int = 256


def create_app(
    make_backend: BackendFactory = default_backend,
    *,
    app_rate: str = "60/minute",
    route_rate: str = "5/minute",
    token_rate: str = "10000/hour",
) -> FastAPI:
    """Build the app; tests pass their own backends and smaller rates."""
    # One backend (prefix) per limit: two limits with the same algorithm and key would
    # otherwise count in the same place.
    app_limiter = AsyncLimiter(FixedWindow(app_rate), make_backend("app:"))
    search_limiter = AsyncLimiter(SlidingLog(route_rate), make_backend("search:"))
    token_limiter = AsyncLimiter(TokenBucket(token_rate), make_backend("tokens:"))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.started = True
        yield
        for limiter in (app_limiter, search_limiter, token_limiter):
            await limiter.aclose()

    app = FastAPI(title="limits-core example", lifespan=lifespan)

    # 1 + 3: app-wide, per client IP behind the trusted proxy.
    app.add_middleware(
        RateLimitMiddleware,
        limiter=app_limiter,
        key=keys.client_ip(trusted_proxies=TRUSTED_PROXIES),
        exempt=["/health"],
        policy_name="app",
    )
    # 2: per route, by user when known, else by IP.
    search_limit = RateLimit(
        search_limiter,
        key=keys.user_or_ip(demo_user, trusted_proxies=TRUSTED_PROXIES),
        policy_name="search",
    )
    # 4: per user and provider, cost = tokens.
    token_budget = RateLimit(
        token_limiter,
        key=keys.compose(keys.user(demo_user), keys.constant("openai")),
        policy_name="openai-tokens",
    )

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        return {"ok": True, "started": getattr(request.app.state, "started", False)}

    @app.get("/search", dependencies=[Depends(search_limit)])
    async def search(q: str) -> dict[str, Any]:
        return {"query": q, "results": []}

    @app.post("/chat")
    async def chat(body: ChatRequest, request: Request, response: Response) -> dict[str, Any]:
        if not request.headers.get("x-user"):
            raise HTTPException(401, "send X-User")
        decision = await token_budget.check(request, response, cost=body.max_tokens)
        remaining = None if decision is None else decision.remaining
        return {"completion": f"(an answer to {body.prompt!r})", "tokens_left": remaining}

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000, proxy_headers=False)
