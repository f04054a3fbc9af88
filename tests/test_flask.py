"""The Flask extension: app-wide limits, per-view decorators and exemptions, on a real Flask
app driven through its (Werkzeug) test client."""

from __future__ import annotations

import logging

import flask
import pytest

from algorithms import FixedWindow, TokenBucket
from backends.memory import MemoryBackend
from limits_core import Backend, ConfigurationError, Limiter, ManualClock, keys
from limits_core.flask import FlaskRateLimiter
from limits_core.gate import Reply
from tests.support.failing import dead_backend_fixture  # noqa: F401
from tests.support.http import rate_limit_fields

LB = {"REMOTE_ADDR": "10.0.0.2"}


def limiter(rate: str, backend: Backend | None = None) -> Limiter:
    return Limiter(
        FixedWindow(rate),
        MemoryBackend() if backend is None else backend,
        clock=ManualClock(1_700_000_000),
    )


def build(
    app_limit: Limiter | None = None, **options: object
) -> tuple[flask.Flask, FlaskRateLimiter]:
    app = flask.Flask(__name__)
    ext = FlaskRateLimiter(
        limiter=app_limit,
        key=keys.client_ip(["10.0.0.0/8"]),
        policy_name="app",
        **options,  # type: ignore[arg-type]
    )

    @app.get("/")
    def home() -> str:
        return "home"

    @app.get("/items/<int:item_id>")
    @ext.limit(limiter("2/minute"), key=keys.route(), policy_name="items")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/health")
    @ext.exempt
    def health() -> str:
        return "ok"

    @app.get("/chat")
    @ext.limit(
        Limiter(TokenBucket("1000/hour"), MemoryBackend(), clock=ManualClock(1_700_000_000)),
        key=keys.compose(keys.user(lambda v: v.header("x-user")), keys.constant("openai")),
        cost=lambda view: int(view.header("x-tokens") or 1),
        policy_name="openai",
    )
    def chat() -> str:
        return "answer"

    ext.init_app(app)
    return app, ext


def test_app_wide_limit_with_init_app() -> None:
    app, ext = build(limiter("3/minute"))
    http = app.test_client()
    responses = [
        http.get("/", environ_base=LB, headers={"X-Forwarded-For": "203.0.113.7"}) for _ in range(4)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert rate_limit_fields(responses[0].headers) == {"app": {"q": 3, "w": 60, "r": 2, "t": 60}}
    assert responses[3].headers["Retry-After"] == "60"
    assert responses[3].json == {"detail": "Too Many Requests"}
    other = http.get("/", environ_base=LB, headers={"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 200
    assert [http.get("/health").status_code for _ in range(5)] == [200] * 5
    assert "RateLimit" not in http.get("/health").headers
    assert (ext.stats.allowed, ext.stats.denied) == (4, 1)


def test_per_view_limit_by_route_template_combines_with_app_wide() -> None:
    app, _ = build(limiter("100/minute"))
    http = app.test_client()
    responses = [http.get(f"/items/{i}") for i in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json == {"id": 0}
    fields = rate_limit_fields(responses[0].headers)
    assert fields == {
        "items": {"q": 2, "w": 60, "r": 1, "t": 60},
        "app": {"q": 100, "w": 60, "r": 99, "t": 60},
    }
    assert responses[2].headers["Retry-After"] == "60"


def test_per_view_limits_only() -> None:
    app, ext = build(None)
    http = app.test_client()
    assert [http.get("/").status_code for _ in range(10)] == [200] * 10
    assert "RateLimit" not in http.get("/").headers
    assert [http.get("/items/1").status_code for _ in range(3)] == [200, 200, 429]
    with pytest.raises(ConfigurationError):
        _ = ext.stats


def test_token_budget_per_user_and_provider() -> None:
    app, _ = build(None)
    http = app.test_client()
    luis = {"X-User": "luis", "X-Tokens": "700"}
    assert http.get("/chat", headers=luis).status_code == 200
    denied = http.get("/chat", headers=luis)
    assert denied.status_code == 429
    assert rate_limit_fields(denied.headers)["openai"]["r"] == 300
    assert http.get("/chat", headers={"X-User": "ana", "X-Tokens": "700"}).status_code == 200


def test_extension_given_the_app_directly() -> None:
    app = flask.Flask(__name__)
    ext = FlaskRateLimiter(app, limiter=limiter("1/minute"))

    @app.get("/")
    def home() -> str:
        return "home"

    assert app.extensions["limits_core"] is ext
    assert [app.test_client().get("/").status_code for _ in range(2)] == [200, 429]


def test_custom_reply() -> None:
    app, _ = build(
        limiter("1/minute"),
        deny_response=Reply(status=429, body=b"later", content_type="text/plain"),
    )
    http = app.test_client()
    http.get("/")
    denied = http.get("/")
    assert (denied.status_code, denied.data) == (429, b"later")
    assert rate_limit_fields(denied.headers)["app"]["r"] == 0


def test_fail_open_closed_and_fallback(
    dead_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    app, ext = build(limiter("1/minute", backend=dead_backend))
    with caplog.at_level(logging.WARNING, logger="limits_core"):
        assert [app.test_client().get("/").status_code for _ in range(3)] == [200] * 3
    assert ext.stats.failed_open == 3
    assert any("failing open" in r.getMessage() for r in caplog.records)

    app, ext = build(limiter("1/minute", backend=dead_backend), on_error="closed")
    response = app.test_client().get("/")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")

    app, ext = build(limiter("1/minute", backend=dead_backend), on_error=limiter("1/minute"))
    assert [app.test_client().get("/").status_code for _ in range(2)] == [200, 429]
    assert ext.stats.fallbacks == 2


def test_example_app() -> None:
    from examples.flask_app import create_app

    app = create_app(lambda prefix: MemoryBackend(), app_rate="4/minute", route_rate="2/minute",
                     token_rate="1000/hour")  # fmt: skip
    http = app.test_client()  # REMOTE_ADDR 127.0.0.1: the trusted proxy of the example
    a = {"X-Forwarded-For": "203.0.113.7"}
    assert [http.get("/", headers=a).status_code for _ in range(5)] == [200] * 4 + [429]
    assert http.get("/", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    assert http.get("/health", headers=a).status_code == 200
    luis = {"X-Forwarded-For": "198.51.100.1", "X-User": "luis"}
    searches = [http.get("/search?q=x", headers=luis) for _ in range(3)]
    assert [r.status_code for r in searches] == [200, 200, 429]
    assert set(rate_limit_fields(searches[0].headers)) == {"search", "app"}
    ana = {"X-Forwarded-For": "198.51.100.2", "X-User": "ana"}
    first = http.post("/chat", json={"prompt": "hi", "max_tokens": 700}, headers=ana)
    assert rate_limit_fields(first.headers)["openai-tokens"]["r"] == 300
    assert http.post("/chat", json={"max_tokens": 700}, headers=ana).status_code == 429
    anonymous = {"X-Forwarded-For": "198.51.100.4"}
    assert http.post("/chat", json={"max_tokens": 7}, headers=anonymous).status_code == 401
