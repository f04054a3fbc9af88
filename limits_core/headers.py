"""Response header fields for rate-limited responses.

The IETF fields of draft-ietf-httpapi-ratelimit-headers are RFC 9651 structured lists with one
member per limit (quota policy) that applied to the request::

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=0;t=17

``q`` is the quota, ``w`` the window in seconds, ``r`` the remaining quota and ``t`` the
seconds until the quota is restored, rounded up. A denied request also gets
``Retry-After`` (RFC 9110, whole seconds rounded up). The legacy ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (delta seconds) are added on request.

Every function takes a sequence of :data:`LimitStatus` ``(name, decision, window_seconds)``,
so a request checked against several limits reports all of them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TypeAlias

from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import ConfigurationError
from limits_core.rate import Rate

__all__ = [
    "LimitStatus",
    "check_policy_name",
    "legacy_fields",
    "rate_limit_headers",
    "ratelimit_field",
    "ratelimit_policy_field",
    "retry_after_field",
    "seconds_up",
    "window_of",
]

#: ``(policy name, decision, window in seconds)`` for one limit applied to a request.
LimitStatus: TypeAlias = tuple[str, Decision, float]

#: The largest RFC 9651 integer.
_SF_INTEGER_MAX = 999_999_999_999_999


def check_policy_name(name: str) -> str:
    """Return ``name`` if it can be an RFC 9651 string (printable ASCII, at most 64
    characters); raise :class:`ConfigurationError` otherwise."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ConfigurationError(f"a policy name must be 1 to 64 characters, got {name!r}")
    if not all(" " <= c <= "~" for c in name):
        raise ConfigurationError(f"a policy name must be printable ASCII, got {name!r}")
    return name


@functools.lru_cache(maxsize=256)
def _quoted(name: str) -> str:
    """``name`` checked and serialized as an RFC 9651 string (cached: names are few)."""
    check_policy_name(name)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seconds_up(seconds: float) -> int:
    """Whole seconds rounded up, clamped to what a structured-field integer can carry."""
    if math.isnan(seconds) or seconds <= 0:
        return 0
    if math.isinf(seconds):
        return _SF_INTEGER_MAX
    return min(math.ceil(seconds), _SF_INTEGER_MAX)


def window_of(algorithm: Algorithm) -> float:
    """The window, in seconds, reported as ``w`` for ``algorithm``.

    A windowed algorithm reports its rate's period. Otherwise (a token bucket) it reports the
    time its state takes to be fully restored, so ``q`` units per ``w`` seconds matches
    ``limit`` (the burst) and ``remaining`` never exceeds ``q``.
    """
    rate = getattr(algorithm, "rate", None)
    if isinstance(rate, Rate) and rate.limit == algorithm.limit:
        return rate.period
    return algorithm.max_state_ttl_us / 1_000_000


def _check(limits: Sequence[LimitStatus]) -> Sequence[LimitStatus]:
    if not limits:
        raise ConfigurationError("at least one limit is needed")
    return limits


def ratelimit_policy_field(limits: Sequence[LimitStatus]) -> str:
    """``RateLimit-Policy``: ``"name";q=<limit>;w=<window seconds, rounded up>`` per limit."""
    return ", ".join(
        f"{_quoted(name)};q={min(d.limit, _SF_INTEGER_MAX)};w={max(seconds_up(window), 1)}"
        for name, d, window in _check(limits)
    )


def ratelimit_field(limits: Sequence[LimitStatus]) -> str:
    """``RateLimit``: ``"name";r=<remaining>;t=<seconds until reset, rounded up>`` per limit."""
    return ", ".join(
        f"{_quoted(name)};r={min(d.remaining, _SF_INTEGER_MAX)};t={seconds_up(d.reset_after)}"
        for name, d, _window in _check(limits)
    )


def retry_after_field(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up (at least 1)."""
    return str(max(seconds_up(seconds), 1))


def _binding(limits: Sequence[LimitStatus]) -> Decision:
    """The decision that binds: a denied one with the longest wait, else the fewest remaining."""
    decisions = [d for _name, d, _window in limits]
    denied = [d for d in decisions if not d.allowed]
    if denied:
        return max(denied, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: (d.remaining, -d.reset_after))


def legacy_fields(limits: Sequence[LimitStatus]) -> list[tuple[str, str]]:
    """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (delta seconds, rounded up) of the
    binding limit (these fields can describe only one)."""
    d = _binding(_check(limits))
    return [
        ("X-RateLimit-Limit", str(d.limit)),
        ("X-RateLimit-Remaining", str(d.remaining)),
        ("X-RateLimit-Reset", str(seconds_up(d.reset_after))),
    ]


def rate_limit_headers(
    limits: Sequence[LimitStatus], *, legacy: bool = False
) -> list[tuple[str, str]]:
    """Every rate-limit field for a response: ``RateLimit-Policy`` and ``RateLimit``, plus
    ``Retry-After`` when a limit denied the request (omitted when the request can never be
    admitted, since no wait would help), plus the legacy fields when ``legacy``."""
    fields = [
        ("RateLimit-Policy", ratelimit_policy_field(limits)),
        ("RateLimit", ratelimit_field(limits)),
    ]
    binding = _binding(limits)
    if not binding.allowed and not binding.never_allowed:
        fields.append(("Retry-After", retry_after_field(binding.retry_after)))
    if legacy:
        fields.extend(legacy_fields(limits))
    return fields
