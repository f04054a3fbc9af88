"""Parsing of ``X-Forwarded-For`` and RFC 7239 ``Forwarded`` entries, one hop at a time.

Each header is split into its list entries without regard for quoting: a valid ``for=`` node
(an IP address, ``"[IPv6]:port"``, ``unknown`` or an obfuscated ``_name``) never contains a
comma or a semicolon, so a naive split parses every valid entry exactly, and whatever a client
writes to the left of an entry can never change how that entry parses. That is what makes
"prepending entries never changes the key" hold even for broken quoting.
"""

from __future__ import annotations

import enum
import functools
import re
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = [
    "IPAddress",
    "Opaque",
    "normalize",
    "parse_address",
    "parse_forwarded_element",
    "parse_node",
    "split_entries",
]

IPAddress = IPv4Address | IPv6Address

#: Longest entry parsed; anything longer is malformed (the longest valid node is a quoted,
#: bracketed IPv6 address with a zone and a port, well under this).
_MAX_ENTRY = 128
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+", re.ASCII)
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+", re.ASCII)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class Opaque(enum.Enum):
    """An entry that names no address: where the walk through the chain stops."""

    #: ``unknown`` or an obfuscated identifier (``_hidden``): valid, but not an address.
    UNKNOWN = "unknown"
    #: Not a valid entry at all.
    MALFORMED = "malformed"


def normalize(address: IPAddress) -> IPAddress:
    """Map IPv4-mapped IPv6 (``::ffff:192.0.2.1``) to IPv4 and drop any IPv6 zone."""
    if isinstance(address, IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
        if address.scope_id is not None:
            return IPv6Address(int(address))
    return address


def parse_address(text: str) -> IPAddress | None:
    """An IP address literal (IPv4, IPv6, optional zone), normalized; ``None`` otherwise."""
    if not text or len(text) > _MAX_ENTRY:
        return None
    return _parse_address(text)


# The same few addresses (peers, proxies, active clients) come back on every request, and
# ipaddress parsing dominates the cost of a key; a bounded cache at worst costs a miss.
@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> IPAddress | None:
    try:
        return normalize(ip_address(text))
    except ValueError:
        return None


def parse_node(text: str) -> IPAddress | Opaque:
    """Parse one node: ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:443``, ``unknown``, ``_obfuscated``. Surrounding whitespace is ignored."""
    text = text.strip()
    if not text or len(text) > _MAX_ENTRY:
        return Opaque.MALFORMED
    if text.lower() == "unknown":
        return Opaque.UNKNOWN
    if text[0] == "_":
        return Opaque.UNKNOWN if _OBFUSCATED.fullmatch(text) else Opaque.MALFORMED
    if text[0] == "[":
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and (rest[0] != ":" or not _PORT.fullmatch(rest[1:]))):
            return Opaque.MALFORMED
        address = parse_address(text[1:end])
        return address if isinstance(address, IPv6Address) else Opaque.MALFORMED
    address = parse_address(text)
    if address is not None:
        return address
    host, colon, port = text.partition(":")
    if colon and _PORT.fullmatch(port):
        address = parse_address(host)
        if isinstance(address, IPv4Address):
            return address
    return Opaque.MALFORMED


def split_entries(lines: list[str]) -> list[str]:
    """The list entries of every line of one header, left to right.

    All lines of a header form one list (RFC 9110, section 5.3); empty elements are allowed by
    the list syntax and skipped.
    """
    return [entry for line in lines for entry in line.split(",") if entry.strip()]


def parse_forwarded_element(element: str) -> IPAddress | Opaque:
    """The ``for=`` node of one ``Forwarded`` element (``for=192.0.2.60;proto=http``)."""
    if len(element) > 4 * _MAX_ENTRY:
        return Opaque.MALFORMED
    found: list[str] = []
    for pair in element.split(";"):
        if not pair.strip():
            continue
        name, equals, value = pair.partition("=")
        if not equals:
            return Opaque.MALFORMED
        if name.strip().lower() == "for":
            found.append(value.strip())
    if len(found) != 1:  # no for= (this hop did not say), or an ambiguous repeat
        return Opaque.MALFORMED
    value = found[0]
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            return Opaque.MALFORMED
        value = _ESCAPE.sub(r"\1", value[1:-1])
    return parse_node(value)
