"""Deciding many calls in pipelines, without I/O: what both twins send, round by round, and
what each reply means.

A batch is sent as one pipeline per *route*: the one server, or each cluster node that owns a
call's slot (all keys of one call share a slot). A pipeline first loads (``SCRIPT LOAD``) the
scripts its route has not been seen to hold, then sends its calls in request order, so calls
on one key are applied in order. On a standalone server, the calls of one algorithm (one key
namespace) go together as one call of its batch script (``lua/batch.lua``), which decides
them in order, each as its own script would, and replies one decision each: Redis parses one
command instead of many, and the client reads one reply. Elsewhere (a cluster node, whose
keys of one script must share a slot; a policy, a lone call) each call is one ``EVALSHA``.
Replies then decide each call:

- a decision, or a Redis error for that call alone (``BackendError``);
- ``NOSCRIPT``: Redis refused to run the call (or the batch), nothing was counted, so only
  the calls that failed are sent again, after ``SCRIPT LOAD``, and as whole scripts
  (``EVAL``) should the cache be flushed once more in between;
- ``MOVED`` / ``ASK`` / ``TRYAGAIN`` (cluster): the call did not run; it is sent again alone
  through the client, which follows the redirection;
- no reply (a dropped connection, a timeout): the outcome is unknown, never resent, and the
  call (every call of a batch script) raises ``BackendUnavailable``.

(A ``NOSCRIPT`` resend runs after the calls that followed it in the first pipeline. Calls on
one key thus stay in order unless another client flushes *and* reloads the script between two
of them, in the middle of a pipeline.)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from backends.redis._plan import AnyPlan, Plan
from backends.redis._scripts import LuaScript
from limits_core.decision import Decision
from limits_core.errors import BackendError

__all__ = ["SCRIPT_BATCH", "VIA_CLIENT", "BatchRun", "Outcome", "ReplyErrors", "Route", "pack"]

#: Where a pipeline goes: ``""`` for a standalone server, a node name on a cluster, or
#: ``VIA_CLIENT``: one command at a time through the client's ``execute_command``.
Route = Hashable
VIA_CLIENT: Route = None

#: The most requests in one call of a batch script: Redis runs a script without serving anyone
#: else, so a long hit_many goes as several (in one pipeline), each blocking Redis for at most
#: this many decisions.
SCRIPT_BATCH = 128

#: A decision, or the error its caller gets.
Outcome = Decision | BackendError

# How far a call has gone: sent as EVALSHA, resent after SCRIPT LOAD, resent whole (EVAL).
_SHA, _RELOADED, _WHOLE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ReplyErrors:
    """The redis-py error classes a batch tells apart, and the translation of the others
    (given by the backend: this module imports no driver)."""

    noscript: type[BaseException]
    redirected: tuple[type[BaseException], ...]
    translate: Callable[[BaseException, str], BackendError]
    address: str


class BatchRun:
    """The rounds of pipelines that decide ``calls`` (``(plan, EVALSHA command)`` pairs).

    Drive it with ``while (sends := run.next_round()): ... run.take(route, replies, error)``;
    ``outcomes`` then holds one :data:`Outcome` per call, in order. ``loaded`` (``(route,
    sha)`` pairs) is the backend's memory of which route holds which script; it is updated.
    """

    __slots__ = ("_errors", "_loaded", "_route_of", "_sent", "_stage", "_todo", "calls", "outcomes")

    def __init__(
        self,
        calls: Sequence[tuple[AnyPlan, tuple[Any, ...]]],
        loaded: set[tuple[Route, str]],
        route_of: Callable[[tuple[Any, ...]], Route],
        errors: ReplyErrors,
    ) -> None:
        self.calls = calls
        self.outcomes: list[Outcome | None] = [None] * len(calls)
        self._loaded = loaded
        self._route_of = route_of
        self._errors = errors
        self._stage = [_SHA] * len(calls)
        self._todo: list[tuple[int, Route]] = [(i, route_of(c[1])) for i, c in enumerate(calls)]
        #: route -> (shas loaded first, then per command sent after them: its script's sha and
        #: its calls, one index or several for a batch script)
        self._sent: dict[Route, tuple[list[str], list[tuple[str, list[int]]]]] = {}

    def next_round(self) -> dict[Route, list[tuple[Any, ...]]]:
        """The pipelines to send now, by route; empty once every call has its outcome."""
        todo, self._todo = self._todo, []
        self._sent = {}
        units: dict[Route, list[list[int]]] = {}
        batches: dict[tuple[str, int], list[int]] = {}
        for index, route in todo:
            plan = self.calls[index][0]
            stage = self._stage[index]
            if route == "" and plan.batch is not None:
                # Keyed by the keys' namespace: calls that may share a key share a batch. A
                # full one is followed by another, later in the pipeline: order is kept.
                batch = batches.get((plan.head, stage))
                if batch is None or len(batch) >= SCRIPT_BATCH:
                    batch = batches[plan.head, stage] = []
                    units.setdefault(route, []).append(batch)
                batch.append(index)
            else:
                units.setdefault(route, []).append([index])
        pipelines: dict[Route, list[tuple[Any, ...]]] = {}
        for route, route_units in units.items():
            loads: list[str] = []
            sent: list[tuple[str, list[int]]] = []
            commands = pipelines[route] = []
            for unit in route_units:
                script, command = self._command(unit)
                if self._stage[unit[0]] == _WHOLE:
                    command = ("EVAL", script.source, *command[2:])
                elif route is not VIA_CLIENT and (route, script.sha) not in self._loaded:
                    self._loaded.add((route, script.sha))
                    loads.append(script.sha)
                    commands.insert(len(loads) - 1, ("SCRIPT", "LOAD", script.source))
                commands.append(command)
                sent.append((script.sha, unit))
            self._sent[route] = (loads, sent)
        return pipelines

    def _command(self, unit: list[int]) -> tuple[LuaScript, tuple[Any, ...]]:
        """The script and EVALSHA command of one call, or of a batch of several."""
        plan, command = self.calls[unit[0]]
        if len(unit) == 1:
            return plan.script, command
        assert isinstance(plan, Plan)
        return plan.batch, plan.batch_command([self.calls[i][1] for i in unit])

    def take(self, route: Route, replies: Sequence[Any], error: BaseException | None) -> None:
        """Record the replies read from ``route``'s pipeline, in order (a Redis error reply as
        an exception instance), and ``error`` when the connection failed before the rest."""
        loads, sent = self._sent[route]
        errors = self._errors
        for position, (sha, unit) in enumerate(sent, start=len(loads)):
            if position >= len(replies):
                # Sent but never answered: it may have run. Never resent.
                assert error is not None
                for index in unit:
                    self.outcomes[index] = errors.translate(error, errors.address)
                continue
            reply = replies[position]
            if isinstance(reply, errors.noscript) and self._stage[unit[0]] < _WHOLE:
                self._loaded.discard((route, sha))
                for index in unit:
                    self._stage[index] += 1
                    self._todo.append((index, route))
            elif isinstance(reply, errors.redirected) and route is not VIA_CLIENT:
                self._todo += [(index, VIA_CLIENT) for index in unit]
            elif len(unit) == 1:
                self._decide(unit[0], reply)
            elif isinstance(reply, list) and len(reply) == len(unit):
                for index, one in zip(unit, reply, strict=True):
                    self._decide(index, one)
            elif isinstance(reply, BaseException):
                # The batch script failed as a whole: no request of it had a decision.
                for index in unit:
                    self._decide(index, reply)
            else:
                for index in unit:
                    self.outcomes[index] = BackendError(
                        f"a batch of {len(unit)} got the reply {reply!r}"
                    )
        if error is not None:
            # A failed connection may have lost the route's script cache too (a restart).
            for sha in loads:
                self._loaded.discard((route, sha))

    def _decide(self, index: int, reply: Any) -> None:
        errors = self._errors
        if isinstance(reply, BaseException):
            self.outcomes[index] = errors.translate(reply, errors.address)
        else:
            self.outcomes[index] = self.calls[index][0].decode(reply)


#: RESP encodings of the small arguments every call repeats (costs, modes, an empty time,
#: parameters), made once: formatting them is most of what packing a batch costs.
_PACKED: dict[bytes | int, bytes] = {}
_PACKED_MAX = 4096


def pack(commands: Sequence[tuple[Any, ...]], encoding: str, errors: str) -> bytes:
    """``commands`` in RESP, as one buffer: what redis-py's ``pack_commands`` sends for our
    arguments (str, bytes, int), at a fraction of its cost per argument."""
    out: list[bytes] = []
    append = out.append
    packed = _PACKED
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is str:
                data = arg.encode(encoding, errors)
                append(b"$%d\r\n%b\r\n" % (len(data), data))
                continue
            resp = packed.get(arg)
            if resp is None:
                data = arg if type(arg) is bytes else b"%d" % arg
                resp = b"$%d\r\n%b\r\n" % (len(data), data)
                # Keys and times differ from call to call: only short values are kept.
                if len(data) <= 12 and len(packed) < _PACKED_MAX:
                    packed[arg] = resp
            append(resp)
    return b"".join(out)
