"""Helpers for the HTTP integration tests: header parsing with http-sf, free ports."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import http_sf


def sf_list(lines: Iterable[str]) -> list[tuple[Any, dict[str, Any]]]:
    """Parse the lines of one structured list field (RFC 9651) as one list, as a recipient
    combines repeated field lines; raises if any line is invalid."""
    joined = ", ".join(lines)
    parsed = http_sf.parse(joined.encode("ascii"), tltype="list")
    assert isinstance(parsed, list)
    return parsed  # type: ignore[return-value]


def rate_limit_fields(headers: Any) -> dict[str, dict[str, Any]]:
    """``{policy name: {"q":, "w":, "r":, "t":}}`` from an httpx or Werkzeug header map,
    after checking both IETF fields are valid structured lists naming the same policies."""
    get = headers.get_list if hasattr(headers, "get_list") else headers.getlist
    policy = sf_list(get("ratelimit-policy"))
    state = sf_list(get("ratelimit"))
    assert [name for name, _ in policy] == [name for name, _ in state]
    return {name: {**p, **s} for (name, p), (_, s) in zip(policy, state, strict=True)}


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
