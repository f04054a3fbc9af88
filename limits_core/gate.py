"""The framework-neutral core of every HTTP integration: request in, outcome out.

A :class:`Gate` holds the options shared by the ASGI middleware, the Starlette decorator, the
FastAPI dependency, the WSGI middleware and the Flask extension (key strategy, exemptions,
cost, response headers, the 429 response, what to do when the store fails) and turns a
decision or a store failure into an :class:`Outcome`: headers to add to the app's response,
or a :class:`Reply` to send instead. :func:`check` and :func:`acheck` are the only code that
differs between sync and async: the one call to the limiter.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Generic, Literal, TypeAlias, TypedDict, TypeVar

from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError
from limits_core.headers import (
    LimitStatus,
    check_policy_name,
    rate_limit_headers,
    retry_after_field,
    window_of,
)
from limits_core.keys import KeyStrategy, client_ip, fit
from limits_core.limiter import AsyncLimiter, Limiter
from limits_core.policy import Policy
from limits_core.request import RequestView
from limits_core.validation import check_cost

__all__ = [
    "DenyResponse",
    "Exempt",
    "Gate",
    "GateOptions",
    "OnError",
    "Outcome",
    "RateLimitStats",
    "Reply",
    "acheck",
    "check",
]

logger = logging.getLogger(__name__)

L = TypeVar("L", Limiter, AsyncLimiter)


def _json(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


@dataclass(frozen=True, slots=True)
class Reply:
    """A response sent instead of calling the application (a 429 or a 503)."""

    status: int = 429
    body: bytes = _json("Too Many Requests")
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise ConfigurationError(f"status must be an int, got {self.status!r}")
        if not 100 <= self.status <= 599:
            raise ConfigurationError(f"status must be between 100 and 599, got {self.status}")
        if not isinstance(self.body, bytes):
            raise ConfigurationError(f"body must be bytes, got {type(self.body).__name__}")

    @property
    def status_line(self) -> str:
        """``"429 Too Many Requests"``, as WSGI's ``start_response`` wants it."""
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return f"{self.status} Unknown"

    def all_headers(self) -> list[tuple[str, str]]:
        """``Content-Type`` and ``Content-Length``, then :attr:`headers`."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Reply:
        return Reply(self.status, self.body, self.content_type, (*self.headers, *headers))


#: The 429 response: a :class:`Reply`, or ``(view, decision) -> Reply``. The rate-limit
#: headers are added to it either way.
DenyResponse: TypeAlias = Reply | Callable[[RequestView, Decision], Reply]
#: ``"open"``: let the request through; ``"closed"``: answer 503 with ``Retry-After``; or a
#: fallback limiter of the same flavour (sync or async) to decide instead.
OnError: TypeAlias = Literal["open", "closed"] | Limiter | AsyncLimiter
#: Requests not to limit: a predicate, or paths (``"/health"``; ``"/static/*"`` a prefix).
Exempt: TypeAlias = Callable[[RequestView], bool] | Iterable[str] | None


class GateOptions(TypedDict, total=False):
    """The keyword options every integration accepts and passes to :class:`Gate`."""

    key: KeyStrategy | None
    exempt: Exempt
    on_error: OnError
    cost: int | Callable[[RequestView], int]
    legacy_headers: bool
    deny_response: DenyResponse | None
    policy_name: str
    error_retry_after: int
    stats: RateLimitStats | None


_UNAVAILABLE = Reply(503, _json("Service Unavailable"))


class RateLimitStats:
    """Counters for metrics, safe to read from any thread: :meth:`snapshot` returns them all.

    ``errors`` counts every store failure (of the limiter and of the fallback);
    ``failed_open``, ``failed_closed`` and ``fallbacks`` say how each was handled, and
    ``fallback_errors`` counts failures of the fallback limiter itself (those fail open).
    """

    FIELDS = (
        "allowed",
        "denied",
        "exempt",
        "errors",
        "failed_open",
        "failed_closed",
        "fallbacks",
        "fallback_errors",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("_counts")
        if counts is None or name not in counts:
            raise AttributeError(name)
        value: int = counts[name]
        return value

    def snapshot(self) -> dict[str, int]:
        """Every counter, read at one instant."""
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f"RateLimitStats({self.snapshot()})"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a request: call the app and add ``headers`` to its response, or send
    ``reply`` instead."""

    headers: tuple[tuple[str, str], ...] = ()
    reply: Reply | None = None
    decision: Decision | None = None


_PASS = Outcome()


def _exempt_predicate(exempt: Exempt) -> Callable[[RequestView], bool] | None:
    if exempt is None or callable(exempt):
        return exempt
    if isinstance(exempt, str):
        exempt = (exempt,)
    exact, prefixes = set(), []
    for path in exempt:
        if not isinstance(path, str):
            raise ConfigurationError(f"exempt paths must be strings, got {path!r}")
        if path.endswith("*"):
            prefixes.append(path[:-1])
        else:
            exact.add(path)
    starts = tuple(prefixes)
    return lambda view: view.path in exact or view.path.startswith(starts)


class Gate(Generic[L]):
    """The options of one rate-limit point and the logic between request and response.

    Args:
        limiter: the limiter to apply (a :class:`Limiter` for WSGI, an
            :class:`AsyncLimiter` for ASGI).
        key: the key strategy (see ``limits_core.keys``); ``None`` from it exempts. By
            default the peer's address (``keys.client_ip()``, no proxy trusted).
        exempt: requests never limited, see :data:`Exempt`.
        on_error: what a store failure (a :class:`~limits_core.BackendError`, nothing
            else) does, see :data:`OnError`. Every failure is logged and counted.
        cost: the cost of a request, an int or ``(view) -> int``.
        legacy_headers: add ``X-RateLimit-Limit``/``-Remaining``/``-Reset``.
        deny_response: the response to a denied request, see :data:`DenyResponse`.
        policy_name: the name reported in ``RateLimit`` and ``RateLimit-Policy``.
        error_retry_after: ``Retry-After`` seconds of the 503 sent when failing closed.
        stats: the counters to update (shared between several gates if given); a new
            :class:`RateLimitStats` by default, exposed as :attr:`stats`.
    """

    def __init__(
        self,
        limiter: L,
        *,
        key: KeyStrategy | None = None,
        exempt: Exempt = None,
        on_error: OnError = "open",
        cost: int | Callable[[RequestView], int] = 1,
        legacy_headers: bool = False,
        deny_response: DenyResponse | None = None,
        policy_name: str = "default",
        error_retry_after: int = 5,
        stats: RateLimitStats | None = None,
    ) -> None:
        flavour: type[Limiter] | type[AsyncLimiter]
        if isinstance(limiter, Limiter):
            flavour = Limiter
        elif isinstance(limiter, AsyncLimiter):
            flavour = AsyncLimiter
        else:
            raise ConfigurationError(f"limiter must be a Limiter or AsyncLimiter, got {limiter!r}")
        if key is None:
            key = client_ip()
        if not callable(key):
            raise ConfigurationError(f"key must be a key strategy (a callable), got {key!r}")
        if on_error not in ("open", "closed") and not isinstance(on_error, flavour):
            raise ConfigurationError(
                f"on_error must be 'open', 'closed' or a fallback {flavour.__name__}, "
                f"got {on_error!r}"
            )
        if not callable(cost):
            check_cost(cost)
        if deny_response is not None and not (
            isinstance(deny_response, Reply) or callable(deny_response)
        ):
            raise ConfigurationError(
                f"deny_response must be a Reply or a callable, got {deny_response!r}"
            )
        if (
            isinstance(error_retry_after, bool)
            or not isinstance(error_retry_after, int)
            or error_retry_after < 1
        ):
            raise ConfigurationError(
                f"error_retry_after must be a positive int, got {error_retry_after!r}"
            )
        self.limiter: L = limiter
        self.key = key
        self.exempt = _exempt_predicate(exempt)
        self.on_error: OnError = on_error
        self.fallback: L | None = on_error if isinstance(on_error, flavour) else None
        self.cost = cost
        self.legacy_headers = legacy_headers
        self.deny_response = deny_response if deny_response is not None else Reply()
        self.policy_name = check_policy_name(policy_name)
        self._parts = _parts(limiter.algorithm, self.policy_name)
        self._fallback_parts = (
            self._parts
            if self.fallback is None
            else _parts(self.fallback.algorithm, self.policy_name)
        )
        self._unavailable = _UNAVAILABLE.with_headers(
            [("Retry-After", retry_after_field(error_retry_after))]
        )
        self.stats = stats if stats is not None else RateLimitStats()

    # --- before the limiter ---

    def key_for(self, view: RequestView) -> str | None:
        """The key of ``view``, or ``None`` when exempt (counted)."""
        if self.exempt is not None and self.exempt(view):
            self.stats.add("exempt")
            return None
        key = self.key(view)
        if key is None:
            self.stats.add("exempt")
            return None
        if not isinstance(key, str):
            raise ConfigurationError(f"key strategy {self.key!r} returned {key!r}, not a str")
        return fit(key)

    def cost_for(self, view: RequestView) -> int:
        cost = self.cost
        return check_cost(cost(view) if callable(cost) else cost)

    # --- after the limiter ---

    def decided(
        self, view: RequestView, decision: Decision, cost: int, *, fallback: bool = False
    ) -> Outcome:
        """The outcome of ``decision``: headers to add, or the 429 reply."""
        parts = self._fallback_parts if fallback else self._parts
        # One list member per limit: a policy's decision carries one detail per limit. When a
        # policy denies, the limits that alone would have admitted consumed nothing: their
        # remaining capacity is what they report after the request, plus its cost.
        decisions = decision.details or (decision,)
        if not decision.allowed and decision.details:
            decisions = tuple(
                replace(d, remaining=d.remaining + cost) if d.allowed else d for d in decisions
            )
        limits: list[LimitStatus] = [
            (name, part, window) for (name, window), part in zip(parts, decisions, strict=True)
        ]
        headers = rate_limit_headers(limits, legacy=self.legacy_headers)
        if decision.allowed:
            self.stats.add("allowed")
            return Outcome(headers=tuple(headers), decision=decision)
        self.stats.add("denied")
        deny = self.deny_response
        reply = deny if isinstance(deny, Reply) else deny(view, decision)
        if not isinstance(reply, Reply):
            raise ConfigurationError(f"deny_response returned {reply!r}, not a Reply")
        return Outcome(reply=reply.with_headers(headers), decision=decision)

    def failed(self, exc: BackendError) -> Outcome | L:
        """Log and count a store failure; return the outcome, or the fallback limiter to ask."""
        self.stats.add("errors")
        if self.fallback is not None:
            self.stats.add("fallbacks")
            logger.warning("rate limit store failed (%s); using the fallback limiter", _show(exc))
            return self.fallback
        if self.on_error == "closed":
            self.stats.add("failed_closed")
            logger.error("rate limit store failed (%s); failing closed with 503", _show(exc))
            return Outcome(reply=self._unavailable)
        self.stats.add("failed_open")
        logger.warning("rate limit store failed (%s); failing open", _show(exc))
        return _PASS

    def fallback_failed(self, exc: BackendError) -> Outcome:
        """Log and count a failure of the fallback limiter: the request fails open."""
        self.stats.add("errors")
        self.stats.add("fallback_errors")
        self.stats.add("failed_open")
        logger.error("fallback rate limit store failed too (%s); failing open", _show(exc))
        return _PASS


def _parts(algorithm: Algorithm, name: str) -> list[tuple[str, float]]:
    """``(name, window)`` of each limit reported in the headers: the policy's names and
    windows for a :class:`~limits_core.Policy`, ``name`` and the window otherwise."""
    if isinstance(algorithm, Policy):
        return [
            (check_policy_name(f"{name}-{part_name}" if name != "default" else part_name),
             window_of(part))
            for part_name, part in zip(algorithm.names, algorithm.algorithms, strict=True)
        ]  # fmt: skip
    return [(name, window_of(algorithm))]


def _show(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def check(gate: Gate[Limiter], view: RequestView, *, cost: int | None = None) -> Outcome:
    """Apply ``gate`` to one request with a sync limiter; ``cost`` overrides the gate's."""
    key = gate.key_for(view)
    if key is None:
        return _PASS
    cost = gate.cost_for(view) if cost is None else check_cost(cost)
    try:
        decision = gate.limiter.hit(key, cost)
    except BackendError as exc:
        action = gate.failed(exc)
        if isinstance(action, Outcome):
            return action
        try:
            decision = action.hit(key, cost)
        except BackendError as exc:
            return gate.fallback_failed(exc)
        return gate.decided(view, decision, cost, fallback=True)
    return gate.decided(view, decision, cost)


async def acheck(
    gate: Gate[AsyncLimiter], view: RequestView, *, cost: int | None = None
) -> Outcome:
    """Apply ``gate`` to one request with an async limiter; the twin of :func:`check`."""
    key = gate.key_for(view)
    if key is None:
        return _PASS
    cost = gate.cost_for(view) if cost is None else check_cost(cost)
    try:
        decision = await gate.limiter.hit(key, cost)
    except BackendError as exc:
        action = gate.failed(exc)
        if isinstance(action, Outcome):
            return action
        try:
            decision = await action.hit(key, cost)
        except BackendError as exc:
            return gate.fallback_failed(exc)
        return gate.decided(view, decision, cost, fallback=True)
    return gate.decided(view, decision, cost)
