"""Deciding many calls in pipelines, without I/O: what both twins send, round by round, and
what each reply means.

A batch is sent as one pipeline per *route*: the one server, or each cluster node that owns a
call's slot (all keys of one call share a slot). A pipeline first loads (``SCRIPT LOAD``) the
scripts its route has not been seen to hold, then sends its calls as ``EVALSHA`` in request
order, so calls on one key are applied in order. Replies then decide each call:

- a decision, or a Redis error for that call alone (``BackendError``);
- ``NOSCRIPT``: Redis refused to run the call, nothing was counted, so only the calls that
  failed are sent again, after ``SCRIPT LOAD``, and as whole scripts (``EVAL``) should the
  cache be flushed once more in between;
- ``MOVED`` / ``ASK`` / ``TRYAGAIN`` (cluster): the call did not run; it is sent again alone
  through the client, which follows the redirection;
- no reply (a dropped connection, a timeout): the outcome is unknown, never resent, and the
  call raises ``BackendUnavailable``.

(A ``NOSCRIPT`` resend runs after the calls that followed it in the first pipeline. Calls on
one key thus stay in order unless another client flushes *and* reloads the script between two
of them, in the middle of a pipeline.)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from backends.redis._plan import Plan, PolicyPlan
from limits_core.decision import Decision
from limits_core.errors import BackendError

__all__ = ["VIA_CLIENT", "BatchRun", "Outcome", "ReplyErrors", "Route", "pack"]

#: Where a pipeline goes: ``""`` for a standalone server, a node name on a cluster, or
#: ``VIA_CLIENT``: one command at a time through the client's ``execute_command``.
Route = Hashable
VIA_CLIENT: Route = None

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
        calls: Sequence[tuple[Plan | PolicyPlan, tuple[Any, ...]]],
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
        #: route -> (shas loaded first, indices of the calls sent after them)
        self._sent: dict[Route, tuple[list[str], list[int]]] = {}

    def next_round(self) -> dict[Route, list[tuple[Any, ...]]]:
        """The pipelines to send now, by route; empty once every call has its outcome."""
        todo, self._todo = self._todo, []
        self._sent = {}
        pipelines: dict[Route, list[tuple[Any, ...]]] = {}
        for index, route in todo:
            plan, command = self.calls[index]
            loads, indices = self._sent.setdefault(route, ([], []))
            commands = pipelines.setdefault(route, [])
            stage, sha = self._stage[index], plan.script.sha
            if stage == _WHOLE:
                command = ("EVAL", plan.script.source, *command[2:])
            elif route is not VIA_CLIENT and (route, sha) not in self._loaded:
                self._loaded.add((route, sha))
                loads.append(sha)
                commands.insert(len(loads) - 1, ("SCRIPT", "LOAD", plan.script.source))
            indices.append(index)
            commands.append(command)
        return pipelines

    def take(self, route: Route, replies: Sequence[Any], error: BaseException | None) -> None:
        """Record the replies read from ``route``'s pipeline, in order (a Redis error reply as
        an exception instance), and ``error`` when the connection failed before the rest."""
        loads, indices = self._sent[route]
        errors = self._errors
        for position, index in enumerate(indices, start=len(loads)):
            if position >= len(replies):
                # Sent but never answered: it may have run. Never resent.
                assert error is not None
                self.outcomes[index] = errors.translate(error, errors.address)
                continue
            reply = replies[position]
            if isinstance(reply, errors.noscript) and self._stage[index] < _WHOLE:
                self._loaded.discard((route, self.calls[index][0].script.sha))
                self._stage[index] += 1
                self._todo.append((index, route))
            elif isinstance(reply, errors.redirected) and route is not VIA_CLIENT:
                self._todo.append((index, VIA_CLIENT))
            elif isinstance(reply, BaseException):
                self.outcomes[index] = errors.translate(reply, errors.address)
            else:
                self.outcomes[index] = self.calls[index][0].decode(reply)
        if error is not None:
            # A failed connection may have lost the route's script cache too (a restart).
            for sha in loads:
                self._loaded.discard((route, sha))


def pack(commands: Sequence[tuple[Any, ...]], encoding: str, errors: str) -> bytes:
    """``commands`` in RESP, as one buffer: what redis-py's ``pack_commands`` sends for our
    arguments (str, bytes, int), at a fraction of its cost per argument."""
    out: list[bytes] = []
    append = out.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is bytes:
                data = arg
            elif type(arg) is str:
                data = arg.encode(encoding, errors)
            else:
                data = b"%d" % arg
            append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)
