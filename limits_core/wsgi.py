"""App-wide rate limiting for WSGI applications (Flask, Django, any WSGI framework)::

    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=limiter,
                                       key=keys.client_ip(trusted_proxies=["10.0.0.0/8"]))

Takes a sync :class:`~limits_core.Limiter` and the options of
:class:`~limits_core.gate.Gate` (``key``, ``exempt``, ``on_error``, ``cost``,
``legacy_headers``, ``deny_response``, ``policy_name``, ``error_retry_after``, ``stats``),
exactly as the ASGI middleware does; the decision-to-response logic is shared with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from limits_core.errors import ConfigurationError
from limits_core.gate import Gate, GateOptions, RateLimitStats, check
from limits_core.limiter import Limiter
from limits_core.request import from_wsgi

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["RateLimitMiddleware", "sync_gate"]


def sync_gate(limiter: Limiter, options: GateOptions) -> Gate[Limiter]:
    """A :class:`Gate` for a sync :class:`Limiter`, refusing an async one."""
    if not isinstance(limiter, Limiter):
        raise ConfigurationError(f"WSGI rate limiting needs a Limiter, got {limiter!r}")
    return Gate(limiter, **options)


class RateLimitMiddleware:
    """App-wide rate limiting as WSGI middleware.

    A denied request gets the 429 reply (the app is not called); an allowed one gets the
    rate-limit headers added to the app's ``start_response``. Counters are in :attr:`stats`.
    """

    def __init__(
        self, app: WSGIApplication, *, limiter: Limiter, **options: Unpack[GateOptions]
    ) -> None:
        self.app = app
        self.gate = sync_gate(limiter, options)

    @property
    def stats(self) -> RateLimitStats:
        return self.gate.stats

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        outcome = check(self.gate, from_wsgi(environ))
        reply = outcome.reply
        if reply is not None:
            start_response(reply.status_line, reply.all_headers())
            return [reply.body]
        if not outcome.headers:
            return self.app(environ, start_response)
        extra = list(outcome.headers)

        def start_with_headers(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: tuple[type[BaseException], BaseException, TracebackType]
            | tuple[None, None, None]
            | None = None,
        ) -> object:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)  # type: ignore[arg-type]
