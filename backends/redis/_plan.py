"""What the sync and async Redis backends share: keys, script arguments and reply decoding.

Nothing here imports redis. A :class:`Plan` is computed once per algorithm and backend, so a
call only builds one key string and one argument tuple, and decodes one reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from algorithms import FixedWindow, SlidingLog, TokenBucket
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError

__all__ = [
    "DEFAULT_PREFIX",
    "SCRIPT_KINDS",
    "Plan",
    "check_prefix",
    "decode_reply",
    "escape_tag",
    "make_plan",
    "redis_key",
    "script_text",
]

DEFAULT_PREFIX = "limits-core:"

#: Algorithm kinds with a script, each in ``lua/<kind>.lua``.
SCRIPT_KINDS = ("fixed_window", "sliding_log", "token_bucket")

#: Characters that would break the hash tag (``{``, ``}``) plus the escape character itself,
#: so the escaping is injective: ``%`` becomes ``%25``, ``{`` ``%7B``, ``}`` ``%7D``.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})

#: ARGV[3] of every script: consume (write when admitted) or peek.
CONSUME, PEEK = b"1", b"0"
#: ARGV[1] when the server's clock decides (the script then calls TIME).
SERVER_TIME = b""


@cache
def script_text(kind: str) -> str:
    """The Lua source of ``kind``'s script, shipped as package data."""
    return files("backends.redis").joinpath("lua", f"{kind}.lua").read_text(encoding="utf-8")


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


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a call needs about one algorithm, computed once.

    ``head`` is the key up to the hash tag's opening brace; ``params`` the script's ARGV after
    (now, cost, consume), already encoded; ``script`` the driver's script object.
    """

    algorithm: Algorithm
    head: str
    params: tuple[bytes, ...]
    limit: int
    script: Any

    def key(self, key: str) -> str:
        return self.head + escape_tag(key) + "}"


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
    raise ConfigurationError(
        f"the Redis backends have no script for {algorithm!r}; supported: {', '.join(SCRIPT_KINDS)}"
    )


def make_plan(prefix: str, algorithm: Algorithm, script: Any) -> Plan:
    """The :class:`Plan` of ``algorithm`` under ``prefix``, running ``script``."""
    params = tuple(str(value).encode() for value in _params(algorithm))
    return Plan(algorithm, f"{prefix}{algorithm.namespace}:{{", params, algorithm.limit, script)


def decode_reply(reply: Any, limit: int) -> Decision:
    """The one place a script reply ``[allowed, remaining, reset_us, retry_us]`` is decoded."""
    allowed, remaining, reset_us, retry_us = reply
    return decision_from_us(allowed == 1, limit, remaining, reset_us, retry_us)
