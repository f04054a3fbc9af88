"""A framework-neutral view of an HTTP request, the input of every key strategy.

The ASGI and WSGI integrations build a :class:`RequestView` from the scope or environ, so a key
strategy (``limits_core.keys``) is written once and works with Starlette, FastAPI, Flask or any
other framework. Nothing here imports a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RequestView", "from_asgi", "from_wsgi", "user_id"]


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a key strategy may look at.

    Attributes:
        method: the request method, upper case (``"GET"``).
        path: the request path, without the query string.
        route: the matched route template (``"/items/{item_id}"``) when routing has happened
            (per-route decorators and dependencies), ``None`` in app-wide middleware.
        headers: ``(name, value)`` pairs with lower-case names, in arrival order, repeats kept.
        peer: the address of the directly connected peer (``scope["client"]`` host or
            ``REMOTE_ADDR``), ``None`` when unknown (a Unix socket).
        user: the authenticated user's identity, or ``None``.
        query: the raw query string, without the ``?``.
        raw: the ASGI scope or WSGI environ the view was built from, for custom strategies.
    """

    method: str
    path: str
    route: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    peer: str | None = None
    user: str | None = None
    query: str = ""
    raw: Any = field(default=None, compare=False, repr=False)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in arrival order."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]


def user_id(user: object) -> str | None:
    """The identity of an authenticated user object, or ``None`` when anonymous.

    Accepts a string, an int, or an object in the style of Starlette's ``BaseUser``: anonymous when
    ``is_authenticated`` is false, identified by ``identity``, ``username`` or ``display_name``.
    """
    if user is None or isinstance(user, str):
        return user or None
    if isinstance(user, int) and not isinstance(user, bool):
        return str(user)
    if getattr(user, "is_authenticated", True) is False:
        return None
    for attribute in ("identity", "username", "display_name"):
        try:
            value = getattr(user, attribute, None)
        except NotImplementedError:  # Starlette's BaseUser.identity
            continue
        if isinstance(value, str) and value:
            return value
    return None


def from_asgi(scope: Mapping[str, Any]) -> RequestView:
    """Build a view from an ASGI ``http`` scope (header bytes decoded as Latin-1)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    client = scope.get("client")
    query = scope.get("query_string", b"")
    return RequestView(
        method=str(scope.get("method", "GET")).upper(),
        path=str(scope.get("path", "/")),
        route=template if isinstance(template, str) else None,
        headers=tuple(
            (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
            for name, value in scope.get("headers", ())
        ),
        peer=str(client[0]) if client else None,
        user=user_id(scope.get("user")),
        query=bytes(query).decode("latin-1"),
        raw=scope,
    )


def from_wsgi(environ: Mapping[str, Any], route: str | None = None) -> RequestView:
    """Build a view from a WSGI environ (PEP 3333: header values are Latin-1 ``str``).

    WSGI servers merge repeated header lines into one value separated by commas, which keeps
    list-valued headers such as ``X-Forwarded-For`` intact.
    """
    headers: list[tuple[str, str]] = []
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers.append((name[5:].replace("_", "-").lower(), str(value)))
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((name.replace("_", "-").lower(), str(value)))
    return RequestView(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        path=str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")) or "/",
        route=route,
        headers=tuple(headers),
        peer=environ.get("REMOTE_ADDR") or None,
        user=user_id(environ.get("REMOTE_USER")),
        query=str(environ.get("QUERY_STRING", "")),
        raw=environ,
    )
