"""What the sync and async Redis backends share: keys, script arguments and reply decoding.

Nothing here imports redis. A :class:`Plan` is computed once per algorithm and backend, so a
call only builds one key string and one argument tuple, and decodes one reply.
"""

from __future__ import annotations

from typing import Any

from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.redis._scripts import KINDS, LuaScript, algorithm_script
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError

__all__ = [
    "DEFAULT_PREFIX",
    "Plan",
    "check_prefix",
    "escape_tag",
    "make_plan",
    "redis_key",
]

DEFAULT_PREFIX = "limits-core:"

#: Characters that would break the hash tag (``{``, ``}``) plus the escape character itself,
#: so the escaping is injective: ``%`` becomes ``%25``, ``{`` ``%7B``, ``}`` ``%7D``.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})

#: ARGV[3] of every script: consume (write when admitted) or peek.
CONSUME, PEEK = b"1", b"0"
#: ARGV[1] when the server's clock decides (the script then calls TIME).
SERVER_TIME = b""


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it can start a Redis key without breaking its hash tag."""
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a str, got {prefix!r}")
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"prefix {prefix!r} must not contain '{{' or '}}': the key's hash tag is what "
            "Redis Cluster routes on"
        )
    return prefix


def escape_tag(key: str) -> str:
    """The user key as a hash tag body: non-empty, free of ``{`` and ``}``, injective."""
    if "%" in key or "{" in key or "}" in key:
        return key.translate(_ESCAPES)
    # An empty key (the limiters never pass one) still gets a non-empty tag that no other
    # key can produce: every '%' of an escaped key is followed by two hex digits.
    return key or "%"


def redis_key(prefix: str, algorithm: Algorithm, key: str) -> str:
    """``prefix + namespace + ":{" + escaped key + "}"``: every Redis key of one decision
    shares the hash tag made from the user key, so Redis Cluster puts them in one slot."""
    return f"{prefix}{algorithm.namespace}:{{{escape_tag(key)}}}"


class Plan:
    """Everything a call needs about one algorithm, computed once per algorithm and backend.

    ``command(key, now_us, cost, consume)`` is the whole EVALSHA command, arguments already
    encoded but for the user key and the time; ``decode(reply)`` the decision.
    """

    __slots__ = ("algorithm", "call", "head", "limit", "params", "script")

    def __init__(self, prefix: str, algorithm: Algorithm, script: LuaScript) -> None:
        self.algorithm = algorithm
        self.script = script
        #: the key up to the hash tag's opening brace
        self.head = f"{prefix}{algorithm.namespace}:{{"
        self.limit = algorithm.limit
        self.call = ("EVALSHA", script.sha, 1)
        self.params = tuple(str(value).encode() for value in _params(algorithm))

    def keys(self, key: str) -> tuple[str, ...]:
        return (self.head + escape_tag(key) + "}",)

    def command(self, key: str, now_us: int | None, cost: int, consume: bool) -> tuple[Any, ...]:
        return (
            *self.call,
            self.head + escape_tag(key) + "}",
            SERVER_TIME if now_us is None else now_us,
            cost,
            CONSUME if consume else PEEK,
            *self.params,
        )

    def decode(self, reply: Any) -> Decision:
        """The one place a script reply ``[allowed, remaining, reset_us, retry_us]`` is
        decoded."""
        allowed, remaining, reset_us, retry_us = reply
        return decision_from_us(allowed == 1, self.limit, remaining, reset_us, retry_us)


def _params(algorithm: Algorithm) -> tuple[int, ...]:
    if isinstance(algorithm, FixedWindow | SlidingLog):
        return (algorithm.limit, algorithm.rate.period_us)
    if isinstance(algorithm, TokenBucket):
        unit = algorithm.unit
        return (
            algorithm.burst,
            unit,
            algorithm.refill_per_us,
            algorithm.burst * unit,
            algorithm.max_state_ttl_us,
        )
    raise ConfigurationError(f"the Redis backends have no script for {algorithm!r}")


def make_plan(prefix: str, algorithm: Algorithm) -> Plan:
    """The :class:`Plan` of ``algorithm`` under ``prefix``; rejects unsupported algorithms."""
    if algorithm.kind not in KINDS:
        raise ConfigurationError(
            f"the Redis backends have no script for {algorithm!r}; supported: {', '.join(KINDS)}"
        )
    return Plan(prefix, algorithm, algorithm_script(algorithm.kind))
