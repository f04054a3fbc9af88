"""Rate limiting for Flask: app-wide limits and a per-view decorator.

::

    rate_limiter = FlaskRateLimiter(app, limiter=Limiter(FixedWindow("100/minute"), backend),
                                    key=keys.client_ip(trusted_proxies=["10.0.0.0/8"]))

    @app.get("/messages")
    @rate_limiter.limit(Limiter(FixedWindow("10/minute"), backend), key=keys.user_or_ip())
    def messages(): ...

    @app.get("/health")
    @rate_limiter.exempt
    def health(): ...

Both take a sync :class:`~limits_core.Limiter` and the options of
:class:`~limits_core.gate.Gate`, like :mod:`limits_core.wsgi`, with which they share the
decision-to-response logic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, Unpack

from limits_core.errors import ConfigurationError
from limits_core.gate import Gate, GateOptions, Outcome, RateLimitStats, Reply, check
from limits_core.keys import KeyStrategy
from limits_core.limiter import Limiter
from limits_core.request import RequestView, from_wsgi
from limits_core.wsgi import sync_gate

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("limits_core.flask needs Flask: pip install 'limits-core[flask]'") from exc

__all__ = ["FlaskRateLimiter", "request_view"]

F = TypeVar("F", bound=Callable[..., Any])

_EXEMPT_ATTRIBUTE = "_limits_core_exempt"
_HEADERS_ATTRIBUTE = "_limits_core_headers"


def request_view() -> RequestView:
    """The :class:`RequestView` of Flask's current request, with its URL rule as route."""
    request = flask.request
    rule = request.url_rule
    return from_wsgi(request.environ, route=rule.rule if rule is not None else None)


def _response(reply: Reply) -> flask.Response:
    response = flask.Response(reply.body, status=reply.status, content_type=reply.content_type)
    response.headers.extend(reply.headers)
    return response


class FlaskRateLimiter:
    """A Flask extension: an app-wide limit (when ``limiter`` is given) and per-view limits.

    Args:
        app: the application, or ``None`` to call :meth:`init_app` later.
        limiter: the app-wide limit, checked before every view except those marked with
            :meth:`exempt`; ``None`` for per-view limits only.
        options: the :class:`~limits_core.gate.Gate` options of the app-wide limit; its
            ``key`` is also the default key of :meth:`limit`.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        limiter: Limiter | None = None,
        **options: Unpack[GateOptions],
    ) -> None:
        self.key: KeyStrategy | None = options.get("key")
        self.gate: Gate[Limiter] | None = None if limiter is None else sync_gate(limiter, options)
        if app is not None:
            self.init_app(app)

    @property
    def stats(self) -> RateLimitStats:
        """The counters of the app-wide limit."""
        if self.gate is None:
            raise ConfigurationError("this FlaskRateLimiter has no app-wide limiter")
        return self.gate.stats

    def init_app(self, app: flask.Flask) -> None:
        """Install the app-wide limit on ``app`` (the extension can serve several apps)."""
        app.extensions["limits_core"] = self
        if self.gate is not None:
            app.before_request(self._before_request)
            app.after_request(self._after_request)

    def _before_request(self) -> flask.Response | None:
        endpoint = flask.request.endpoint
        view = flask.current_app.view_functions.get(endpoint) if endpoint else None
        if view is not None and getattr(view, _EXEMPT_ATTRIBUTE, False):
            return None
        gate = self.gate
        if gate is None:  # pragma: no cover - installed only with a gate
            return None
        outcome = check(gate, request_view())
        if outcome.reply is not None:
            return _response(outcome.reply)
        _remember(outcome)
        return None

    @staticmethod
    def _after_request(response: flask.Response) -> flask.Response:
        headers = flask.g.pop(_HEADERS_ATTRIBUTE, None)
        if headers:
            response.headers.extend(headers)
        return response

    def exempt(self, view: F) -> F:
        """Mark a view as not subject to the app-wide limit (its own limits still apply)."""
        setattr(view, _EXEMPT_ATTRIBUTE, True)
        return view

    def limit(self, limiter: Limiter, **options: Unpack[GateOptions]) -> Callable[[F], F]:
        """A decorator limiting one view; ``key`` defaults to the extension's key.

        Put it below ``@app.route`` so that Flask registers the limited view.
        """
        if "key" not in options and self.key is not None:
            options["key"] = self.key
        gate = sync_gate(limiter, options)

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def limited(*args: Any, **kwargs: Any) -> flask.Response:
                outcome = check(gate, request_view())
                if outcome.reply is not None:
                    return _response(outcome.reply)
                response = flask.make_response(view(*args, **kwargs))
                response.headers.extend(outcome.headers)
                return response

            limited.rate_limit_stats = gate.stats  # type: ignore[attr-defined]
            return limited  # type: ignore[return-value]

        return decorate


def _remember(outcome: Outcome) -> None:
    if outcome.headers:
        flask.g.setdefault(_HEADERS_ATTRIBUTE, []).extend(outcome.headers)
