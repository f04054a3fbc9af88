"""The Lua scripts, assembled from the fragments in ``lua/`` (shipped as package data).

Each algorithm's logic exists once, in ``lua/<kind>.lua``, as ``<kind>_decide``,
``<kind>_commit`` and ``<kind>_refund`` functions (the contract is at the top of
``lua/common.lua``). A script is ``common.lua`` + the fragments it needs + a small main:
``main.lua`` runs one algorithm, ``batch.lua`` one algorithm on many keys (a batch),
``policy.lua`` several on one key, all or nothing.
Sources and their SHA1 digests are computed once per process; the backends run them with
EVALSHA and send a script whole (EVAL, which caches it) only when Redis answers NOSCRIPT.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = [
    "KINDS",
    "LuaScript",
    "algorithm_script",
    "batch_script",
    "concurrency_script",
    "policy_script",
]

#: Algorithm kinds with a fragment ``lua/<kind>.lua``.
KINDS = (
    "fixed_window",
    "gcra",
    "leaky_bucket",
    "sliding_log",
    "sliding_window_counter",
    "token_bucket",
)


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A script's source and the SHA1 digest Redis knows it by."""

    source: str
    sha: str


@cache
def _read(name: str) -> str:
    return files("backends.redis").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _script(*parts: str) -> LuaScript:
    source = "\n".join(parts)
    return LuaScript(source, hashlib.sha1(source.encode()).hexdigest())


def _one_kind(kind: str, main: str) -> LuaScript:
    if kind not in KINDS:
        raise KeyError(kind)
    bind = f"local decide, commit, refund = {kind}_decide, {kind}_commit, {kind}_refund\n"
    return _script(_read("common"), _read(kind), bind + _read(main))


@cache
def algorithm_script(kind: str) -> LuaScript:
    """The script running the algorithm ``kind`` alone on one key."""
    return _one_kind(kind, "main")


@cache
def batch_script(kind: str) -> LuaScript:
    """The script running the algorithm ``kind`` on many keys, one request each, in order."""
    return _one_kind(kind, "batch")


@cache
def policy_script() -> LuaScript:
    """The script running a policy: any number of algorithms of any kinds on one key."""
    decide = ", ".join(f"{kind} = {kind}_decide" for kind in KINDS)
    commit = ", ".join(f"{kind} = {kind}_commit" for kind in KINDS)
    refund = ", ".join(f"{kind} = {kind}_refund" for kind in KINDS)
    bind = (
        f"local DECIDE = {{{decide}}}\nlocal COMMIT = {{{commit}}}\nlocal REFUND = {{{refund}}}\n"
    )
    return _script(_read("common"), *map(_read, KINDS), bind + _read("policy"))


@cache
def concurrency_script() -> LuaScript:
    """The script of a concurrency limit's leases: peek, acquire and release."""
    return _script(_read("common"), _read("concurrency"))
