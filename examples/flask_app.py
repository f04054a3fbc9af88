"""A Flask app with the four common rate limits.

Run it (from the repository root, with ``pip install '.[flask]'``)::

    python -m examples.flask_app

or ``flask --app examples.flask_app run``. State lives in memory; with
``LIMITS_CORE_REDIS_URL`` set (and the Redis backend installed) it lives in Redis and is shared
by every worker process.

Then try::

    curl -i localhost:5000/                                   # app-wide: 60/minute per client IP
    curl -i -H 'X-Forwarded-For: 203.0.113.7' localhost:5000/  # another client behind the proxy
    curl -i 'localhost:5000/search?q=rate'                     # per view: 5/minute per user or IP
    curl -i -X POST localhost:5000/chat -H 'X-User: luis' \\
         -H 'Content-Type: application/json' -d '{"prompt": "hi", "max_tokens": 800}'

1. **App-wide limit** (``FlaskRateLimiter(limiter=...)``): every view except ``/health``
   (``@rate_limiter.exempt``), keyed by client IP. 127.0.0.1 and ::1 are trusted proxies.
2. **Per-view limit** (``@rate_limiter.limit(...)``): ``/search`` has a tighter sliding-log
   limit, keyed by user when one is given, by IP otherwise.
3. **Per-IP key behind a trusted proxy**: ``keys.client_ip(trusted_proxies=...)``.
4. **User + provider token budget**: ``/chat`` spends ``max_tokens`` from the user's budget for
   the upstream provider (``user:luis|openai``), a cost-weighted token bucket.

For the demo the user is whatever ``X-User`` says; a real app would take it from a verified
session or token.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import flask

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import Backend, Limiter, keys
from limits_core.flask import FlaskRateLimiter
from limits_core.request import RequestView

logger = logging.getLogger("examples.flask_app")

#: The reverse proxies in front of this app (here: one on the same host).
TRUSTED_PROXIES = ["127.0.0.1", "::1"]

BackendFactory = Callable[[str], Backend]


def default_backend(prefix: str) -> Backend:
    """Redis when ``LIMITS_CORE_REDIS_URL`` is set and the Redis backend exists, else memory."""
    url = os.environ.get("LIMITS_CORE_REDIS_URL")
    if url:
        try:
            # Optional: imported only when asked, so the example runs without it.
            from backends.redis import RedisBackend  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            logger.warning("LIMITS_CORE_REDIS_URL is set but backends.redis is missing")
        else:
            backend: Backend = RedisBackend(url, prefix=f"limits-core-example:{prefix}")
            return backend
    return MemoryBackend()


def demo_user(view: RequestView) -> str | None:
    """Demo only: trust ``X-User``. A real app verifies a session or token here."""
    return view.header("x-user")


def _tokens(view: RequestView) -> int:
    body = flask.request.get_json(silent=True) or {}
    tokens = body.get("max_tokens", 256) if isinstance(body, dict) else 256
    return tokens if isinstance(tokens, int) and tokens > 0 else 256


def create_app(
    make_backend: BackendFactory = default_backend,
    *,
    app_rate: str = "60/minute",
    route_rate: str = "5/minute",
    token_rate: str = "10000/hour",
) -> flask.Flask:
    """Build the app; tests pass their own backends and smaller rates."""
    app = flask.Flask(__name__)
    # 1 + 3: app-wide, per client IP behind the trusted proxy. One backend (prefix) per limit:
    # two limits with the same algorithm and key would otherwise count in the same place.
    rate_limiter = FlaskRateLimiter(
        app,
        limiter=Limiter(FixedWindow(app_rate), make_backend("app:")),
        key=keys.client_ip(trusted_proxies=TRUSTED_PROXIES),
        policy_name="app",
    )

    @app.get("/")
    def home() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/health")
    @rate_limiter.exempt
    def health() -> dict[str, bool]:
        return {"ok": True}

    # 2: per view, by user when known, else by IP.
    @app.get("/search")
    @rate_limiter.limit(
        Limiter(SlidingLog(route_rate), make_backend("search:")),
        key=keys.user_or_ip(demo_user, trusted_proxies=TRUSTED_PROXIES),
        policy_name="search",
    )
    def search() -> dict[str, Any]:
        return {"query": flask.request.args.get("q", ""), "results": []}

    # 4: per user and provider, cost = tokens requested.
    @app.post("/chat")
    @rate_limiter.limit(
        Limiter(TokenBucket(token_rate), make_backend("tokens:")),
        key=keys.compose(keys.user(demo_user), keys.constant("openai")),
        cost=_tokens,
        policy_name="openai-tokens",
    )
    def chat() -> Any:
        if not flask.request.headers.get("X-User"):
            return {"detail": "send X-User"}, 401
        prompt = (flask.request.get_json(silent=True) or {}).get("prompt", "")
        return {"completion": f"(an answer to {prompt!r})"}

    return app


app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
