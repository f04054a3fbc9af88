"""Rate limiting for ASGI applications (Starlette, FastAPI, any ASGI framework).

- :class:`RateLimitMiddleware`: app-wide, pure ASGI (works under any ASGI framework)::

      app = Starlette(routes=..., middleware=[
          Middleware(RateLimitMiddleware, limiter=limiter,
                     key=keys.client_ip(trusted_proxies=["10.0.0.0/8"]))])

- :func:`rate_limit`: per route, a decorator for Starlette endpoints.
- :class:`RateLimit`: per route, a FastAPI dependency: ``Depends(RateLimit(limiter))``.

All take an :class:`~limits_core.AsyncLimiter` and the options of
:class:`~limits_core.gate.Gate`: ``key``, ``exempt``, ``on_error`` (``"open"``, ``"closed"``
or a fallback limiter), ``cost``, ``legacy_headers``, ``deny_response``, ``policy_name``,
``error_retry_after``, ``stats``. Allowed responses carry ``RateLimit`` and
``RateLimit-Policy``; denied requests get 429 with ``Retry-After`` as well.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias, Unpack

from limits_core.decision import Decision
from limits_core.errors import ConfigurationError
from limits_core.gate import Gate, GateOptions, Outcome, RateLimitStats, Reply, acheck
from limits_core.limiter import AsyncLimiter
from limits_core.request import from_asgi

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("limits_core.asgi needs Starlette: pip install 'limits-core[asgi]'") from exc

__all__ = [
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimitedHTTPException",
    "RouteLimit",
    "rate_limit",
    "rate_limit_exception_handler",
]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


def _async_gate(limiter: AsyncLimiter, options: GateOptions) -> Gate[AsyncLimiter]:
    if not isinstance(limiter, AsyncLimiter):
        raise ConfigurationError(f"ASGI rate limiting needs an AsyncLimiter, got {limiter!r}")
    return Gate(limiter, **options)


def _raw_headers(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[Any]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class RateLimitMiddleware:
    """App-wide rate limiting as pure ASGI middleware.

    HTTP requests are checked before the app sees them: a denied request gets the 429 reply
    (the app is not called), an allowed one gets the rate-limit headers added to the app's
    ``http.response.start``. Lifespan and websocket scopes pass straight through. Counters
    are in :attr:`stats`.
    """

    def __init__(
        self, app: ASGIApp, *, limiter: AsyncLimiter, **options: Unpack[GateOptions]
    ) -> None:
        self.app = app
        self.gate = _async_gate(limiter, options)

    @property
    def stats(self) -> RateLimitStats:
        return self.gate.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outcome = await acheck(self.gate, from_asgi(scope))
        if outcome.reply is not None:
            await send_reply(send, outcome.reply)
            return
        if not outcome.headers:
            await self.app(scope, receive, send)
            return
        extra = _raw_headers(outcome.headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def send_reply(send: Send, reply: Reply) -> None:
    """Send ``reply`` as a complete ASGI HTTP response."""
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": _raw_headers(reply.all_headers()),
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


def _response(reply: Reply) -> Response:
    return Response(
        reply.body, status_code=reply.status, headers=dict(reply.headers),
        media_type=reply.content_type,
    )  # fmt: skip


Endpoint: TypeAlias = Callable[[Request], Any]


class RouteLimit:
    """A per-route limit for Starlette endpoints; made by :func:`rate_limit`."""

    def __init__(self, limiter: AsyncLimiter, options: GateOptions) -> None:
        self.gate = _async_gate(limiter, options)

    @property
    def stats(self) -> RateLimitStats:
        return self.gate.stats

    def __call__(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        is_async = _is_async(endpoint)
        gate = self.gate

        @functools.wraps(endpoint)
        async def limited(request: Request) -> Response:
            outcome = await acheck(gate, from_asgi(request.scope))
            if outcome.reply is not None:
                return _response(outcome.reply)
            if is_async:
                response = await endpoint(request)
            else:
                response = await run_in_threadpool(endpoint, request)
            for name, value in outcome.headers:
                response.headers.append(name, value)
            return response  # type: ignore[no-any-return]

        return limited


def _is_async(function: object) -> bool:
    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004
    )


def rate_limit(limiter: AsyncLimiter, **options: Unpack[GateOptions]) -> RouteLimit:
    """Limit one Starlette endpoint (sync or async)::

        @rate_limit(limiter, key=keys.user_or_ip())
        async def messages(request): ...

    The route template is known here, so ``keys.route()`` keys by it. The returned
    :class:`RouteLimit` exposes :attr:`RouteLimit.stats`.
    """
    return RouteLimit(limiter, options)


class RateLimitedHTTPException(HTTPException):
    """Raised by the :class:`RateLimit` dependency for a denied request (or a 503 when
    failing closed). FastAPI renders it as ``{"detail": ...}`` with its headers; register
    :func:`rate_limit_exception_handler` to send a custom ``deny_response`` verbatim."""

    def __init__(self, reply: Reply, decision: Decision | None = None) -> None:
        self.reply = reply
        self.decision = decision
        detail = "Too Many Requests" if reply.status == 429 else _phrase(reply.status)
        super().__init__(reply.status, detail, headers=dict(reply.headers))


def _phrase(status: int) -> str:
    return Reply(status).status_line.partition(" ")[2]


async def rate_limit_exception_handler(request: Request, exc: Exception) -> Response:
    """Send the :class:`Reply` of a :class:`RateLimitedHTTPException` as it is::

    app.add_exception_handler(RateLimitedHTTPException, rate_limit_exception_handler)
    """
    if not isinstance(exc, RateLimitedHTTPException):
        raise exc
    return _response(exc.reply)


class RateLimit:
    """A per-route limit as a FastAPI dependency::

        limit = RateLimit(limiter, key=keys.user_or_ip())

        @app.get("/messages", dependencies=[Depends(limit)])
        async def messages(): ...

    An allowed request gets the rate-limit headers on its response; a denied one raises
    :class:`RateLimitedHTTPException` (429 with ``Retry-After``). For a cost known only in
    the endpoint (tokens of an LLM call), call :meth:`check` there::

        await budget.check(request, response, cost=body.max_tokens)
    """

    def __init__(self, limiter: AsyncLimiter, **options: Unpack[GateOptions]) -> None:
        self.gate = _async_gate(limiter, options)

    @property
    def stats(self) -> RateLimitStats:
        return self.gate.stats

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        return await self.check(request, response)

    async def check(
        self, request: Request, response: Response, *, cost: int | None = None
    ) -> Decision | None:
        """Check ``request`` (with ``cost`` instead of the configured one, if given); add
        the headers to ``response`` or raise :class:`RateLimitedHTTPException`. Returns the
        decision (``None`` when exempt or failing open)."""
        outcome: Outcome = await acheck(self.gate, from_asgi(request.scope), cost=cost)
        if outcome.reply is not None:
            raise RateLimitedHTTPException(outcome.reply, outcome.decision)
        for name, value in outcome.headers:
            response.headers.append(name, value)
        return outcome.decision
