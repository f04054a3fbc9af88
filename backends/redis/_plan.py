"""What the sync and async Redis backends share: keys, script arguments and reply decoding.

Nothing here imports redis. A :class:`Plan` (a :class:`PolicyPlan` for a policy) is computed
once per algorithm and backend, so a call only builds its key strings and one argument tuple,
and decodes one reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from algorithms import (
    GCRA,
    Concurrency,
    FixedWindow,
    LeakyBucket,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from backends.redis._scripts import (
    KINDS,
    LuaScript,
    algorithm_script,
    batch_script,
    concurrency_script,
    policy_script,
)
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision, decision_from_us
from limits_core.errors import ConfigurationError
from limits_core.policy import Policy, combine

__all__ = [
    "DEFAULT_PREFIX",
    "SCRIPT_KINDS",
    "AnyPlan",
    "LeasePlan",
    "Plan",
    "PolicyPlan",
    "check_prefix",
    "decode_reply",
    "escape_tag",
    "make_plan",
    "redis_key",
    "redis_keys",
]

DEFAULT_PREFIX = "limits-core:"

#: What the Redis backends run: every kind with a fragment, and policies of them.
SCRIPT_KINDS = (*KINDS, Policy.kind)

#: Characters that would break the hash tag (``{``, ``}``) plus the escape character itself,
#: so the escaping is injective: ``%`` becomes ``%25``, ``{`` ``%7B``, ``}`` ``%7D``.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})

#: ARGV[3] of every script: consume (write when admitted), peek, or refund (give ARGV[2] back,
#: then decide a peek of cost 1).
CONSUME, PEEK, REFUND = b"1", b"0", b"2"
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


def _heads(prefix: str, algorithm: Algorithm) -> tuple[str, ...]:
    """Each Redis key of ``algorithm`` up to its hash tag's opening brace: one key, or one per
    component of a policy, scoped by the policy (as the in-memory backend keeps a policy's
    state apart from a lone algorithm's)."""
    if isinstance(algorithm, Policy):
        return tuple(
            f"{prefix}{algorithm.namespace}:{a.namespace}:{{" for a in algorithm.algorithms
        )
    return (f"{prefix}{algorithm.namespace}:{{",)


def redis_keys(prefix: str, algorithm: Algorithm, key: str) -> tuple[str, ...]:
    """Every Redis key of ``algorithm`` (a policy has one per component) for the user key
    ``key``: ``prefix + namespace + ":{" + escaped key + "}"``. They all share the hash tag
    made from the user key, so Redis Cluster puts them in one slot."""
    tag = escape_tag(key)
    return tuple(head + tag + "}" for head in _heads(prefix, algorithm))


def redis_key(prefix: str, algorithm: Algorithm, key: str) -> str:
    """The Redis key of a single (non-policy) ``algorithm`` for the user key ``key``."""
    (only,) = redis_keys(prefix, algorithm, key)
    return only


def _params(algorithm: Algorithm) -> tuple[int, ...]:
    """The script parameters of one algorithm, after (now, cost, consume): the "Parameters"
    line at the top of its ``lua/<kind>.lua``."""
    if isinstance(algorithm, FixedWindow | SlidingLog | SlidingWindowCounter):
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
    if isinstance(algorithm, GCRA):
        interval = algorithm.emission_interval
        return (algorithm.burst, algorithm.scale, interval, algorithm.burst * interval)
    if isinstance(algorithm, LeakyBucket):
        unit = algorithm.unit
        return (
            algorithm.capacity,
            unit,
            algorithm.drain_per_us,
            algorithm.capacity * unit,
            algorithm.max_state_ttl_us,
        )
    raise ConfigurationError(f"the Redis backends have no script for {algorithm!r}")


def _encode(values: tuple[int | str, ...]) -> tuple[bytes, ...]:
    return tuple(str(value).encode() for value in values)


def decode_reply(reply: Any, limit: int) -> Decision:
    """The one place a script's reply ``[allowed, remaining, reset_us, retry_us]`` is
    decoded; a policy's reply is one such quadruple per component."""
    allowed, remaining, reset_us, retry_us = reply
    return decision_from_us(allowed == 1, limit, remaining, reset_us, retry_us)


class Plan:
    """Everything a call needs about one algorithm, computed once per algorithm and backend.

    ``command(key, now_us, cost, consume)`` is the whole EVALSHA command, arguments already
    encoded but for the user key and the time; ``decode(reply)`` the decision.
    ``batch_command(commands)`` runs the requests of several such commands in one call of
    ``batch`` (``lua/batch.lua``), whose reply holds one decision reply per request.
    """

    __slots__ = ("algorithm", "batch", "call", "head", "limit", "params", "script")

    def __init__(self, prefix: str, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self.script = algorithm_script(algorithm.kind)
        self.batch: LuaScript = batch_script(algorithm.kind)
        (self.head,) = _heads(prefix, algorithm)
        self.limit = algorithm.limit
        self.call = ("EVALSHA", self.script.sha, 1)
        self.params = _encode(_params(algorithm))

    def batch_command(self, commands: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
        """One EVALSHA of ``batch`` for the requests of ``commands`` (built by
        :meth:`command` or :meth:`refund_command` of plans with this one's ``head``, so with
        its parameters): the keys, the parameters once, then each request's time, cost and
        mode, in order."""
        args: list[Any] = ["EVALSHA", self.batch.sha, len(commands)]
        args += [command[3] for command in commands]
        args.append(len(self.params))
        args += self.params
        for command in commands:
            args += command[4:7]
        return tuple(args)

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

    def refund_command(self, key: str, now_us: int | None, amount: int) -> tuple[Any, ...]:
        """The command giving ``amount`` back, replying as a peek of cost 1."""
        return (
            *self.call,
            self.head + escape_tag(key) + "}",
            SERVER_TIME if now_us is None else now_us,
            amount,
            REFUND,
            *self.params,
        )

    def decode(self, reply: Any) -> Decision:
        return decode_reply(reply, self.limit)


class PolicyPlan:
    """The :class:`Plan` of a :class:`~limits_core.Policy`: one key per component, all in the
    user key's slot, decided by one script all or nothing."""

    __slots__ = ("algorithm", "call", "heads", "limits", "params", "script")

    #: Policies are batched as one EVALSHA each.
    batch = None

    def __init__(self, prefix: str, policy: Policy) -> None:
        self.algorithm = policy
        self.script = policy_script()
        self.heads = _heads(prefix, policy)
        self.limits = tuple(a.limit for a in policy.algorithms)
        self.call = ("EVALSHA", self.script.sha, len(self.heads))
        params: list[int | str] = []
        for component in policy.algorithms:
            values = _params(component)
            params += (component.kind, len(values), *values)
        self.params = _encode(tuple(params))

    def keys(self, key: str) -> tuple[str, ...]:
        tag = escape_tag(key) + "}"
        return tuple(head + tag for head in self.heads)

    def command(self, key: str, now_us: int | None, cost: int, consume: bool) -> tuple[Any, ...]:
        return (
            *self.call,
            *self.keys(key),
            SERVER_TIME if now_us is None else now_us,
            cost,
            CONSUME if consume else PEEK,
            *self.params,
        )

    def refund_command(self, key: str, now_us: int | None, amount: int) -> tuple[Any, ...]:
        """The command giving ``amount`` back to every limit, replying as a peek of 1."""
        return (
            *self.call,
            *self.keys(key),
            SERVER_TIME if now_us is None else now_us,
            amount,
            REFUND,
            *self.params,
        )

    def decode(self, reply: Any) -> Decision:
        return combine(
            [
                decode_reply(reply[i : i + 4], limit)
                for i, limit in zip(range(0, 4 * len(self.limits), 4), self.limits, strict=True)
            ]
        )


class LeasePlan:
    """The :class:`Plan` of a :class:`~algorithms.Concurrency` limit: one script that peeks,
    acquires or releases (``lua/concurrency.lua``), on one key per user key."""

    __slots__ = ("algorithm", "call", "head", "limit", "params", "script")

    batch = None

    def __init__(self, prefix: str, algorithm: Concurrency) -> None:
        self.algorithm = algorithm
        self.script = concurrency_script()
        (self.head,) = _heads(prefix, algorithm)
        self.limit = algorithm.limit
        self.call = ("EVALSHA", self.script.sha, 1)
        self.params = _encode((algorithm.limit, algorithm.lease_ttl_us))

    def keys(self, key: str) -> tuple[str, ...]:
        return (self.head + escape_tag(key) + "}",)

    def _command(
        self, operation: bytes, key: str, now_us: int | None, cost: int, *lease_id: int
    ) -> tuple[Any, ...]:
        return (
            *self.call,
            self.head + escape_tag(key) + "}",
            SERVER_TIME if now_us is None else now_us,
            cost,
            operation,
            *self.params,
            *lease_id,
        )

    def command(self, key: str, now_us: int | None, cost: int, consume: bool) -> tuple[Any, ...]:
        """A peek; a hit is refused (leases are taken by :meth:`acquire`)."""
        if consume:
            raise ConfigurationError(f"{self.algorithm!r} takes leases, not hits")
        return self._command(b"peek", key, now_us, cost)

    def acquire(self, key: str, now_us: int | None, lease_id: int, cost: int) -> tuple[Any, ...]:
        return self._command(b"acquire", key, now_us, cost, lease_id)

    def release(self, key: str, now_us: int | None, lease_id: int) -> tuple[Any, ...]:
        return self._command(b"release", key, now_us, 0, lease_id)

    def decode(self, reply: Any) -> Decision:
        return decode_reply(reply, self.limit)


#: Any plan a backend may hold.
AnyPlan = Plan | PolicyPlan | LeasePlan


def make_plan(prefix: str, algorithm: Algorithm) -> AnyPlan:
    """The plan of ``algorithm`` (or policy) under ``prefix``; rejects what has no script."""
    if isinstance(algorithm, Concurrency):
        return LeasePlan(prefix, algorithm)
    parts = algorithm.algorithms if isinstance(algorithm, Policy) else (algorithm,)
    for part in parts:
        if part.kind not in KINDS:
            raise ConfigurationError(
                f"the Redis backends have no script for {part!r}; supported: {', '.join(KINDS)}"
            )
    if isinstance(algorithm, Policy):
        return PolicyPlan(prefix, algorithm)
    return Plan(prefix, algorithm)
