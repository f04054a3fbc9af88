"""Key strategies: turn a request into the key a limit is counted under.

A key strategy is any callable ``(RequestView) -> str | None``; ``None`` exempts the request.
The strategies here tag what they return (``ip:203.0.113.7``, ``user:luis``,
``route:GET /items/{id}``), so keys from different strategies never collide, and always
return a key the limiter accepts (at most 512 UTF-8 bytes, no control characters): a value
that is too long or unsafe to store as text is replaced by its digest (``user#3f2a...``).

>>> from limits_core import keys
>>> per_user_per_provider = keys.compose(keys.user(), keys.constant("openai"))
>>> anonymous_or_not = keys.user_or_ip(trusted_proxies=["10.0.0.0/8"])
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Literal, TypeAlias

from limits_core.errors import ConfigurationError
from limits_core.forwarding import (
    IPAddress,
    Opaque,
    parse_address,
    parse_forwarded_element,
    parse_node,
    split_entries,
)
from limits_core.request import RequestView, user_id
from limits_core.validation import MAX_KEY_BYTES, check_key

__all__ = [
    "ClientIP",
    "KeyStrategy",
    "client_ip",
    "compose",
    "constant",
    "first",
    "fit",
    "hashed",
    "header",
    "route",
    "user",
    "user_or_ip",
]

logger = logging.getLogger(__name__)

KeyStrategy: TypeAlias = Callable[[RequestView], str | None]

#: Longest value kept as text inside a tagged key; longer values are digested, so a composite
#: of a few parts still fits in a key.
_MAX_VALUE_BYTES = 128
_DIGEST_BYTES = 16


def _digest(text: str, secret: bytes | None = None) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES, key=secret or b"").hexdigest()


def _storable(text: str, max_bytes: int) -> bool:
    try:
        check_key(text)
    except ConfigurationError:
        return False
    return len(text.encode("utf-8")) <= max_bytes


def _tagged(tag: str, value: str) -> str:
    """``tag:value``, or ``tag#digest`` when the value is too long or unsafe as text."""
    if _storable(value, _MAX_VALUE_BYTES):
        return f"{tag}:{value}"
    return f"{tag}#{_digest(value)}"


def fit(key: str) -> str:
    """``key`` itself when the limiter accepts it; otherwise ``#`` and its digest.

    The integrations pass every key through this, so a custom strategy returning an overlong
    or unsafe key still rate-limits (by digest) instead of failing the request.
    """
    if _storable(key, MAX_KEY_BYTES):
        return key
    return "#" + _digest(key)


def _check_strategy(strategy: object) -> KeyStrategy:
    if not callable(strategy):
        raise ConfigurationError(f"a key strategy must be callable, got {strategy!r}")
    return strategy


# --- client IP ---------------------------------------------------------------------------

Network: TypeAlias = IPv4Network | IPv6Network
ProxyHeader: TypeAlias = Literal["x-forwarded-for", "forwarded"]


def _networks(trusted: Iterable[object]) -> tuple[tuple[Network, ...], bool]:
    if isinstance(trusted, str | bytes):
        raise ConfigurationError("trusted_proxies must be a list of IPs or CIDRs, not one string")
    networks: list[Network] = []
    unix = False
    for item in trusted:
        if item == "unix":
            unix = True
            continue
        try:
            network = ip_network(item, strict=False)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigurationError(f"not an IP address or CIDR: {item!r}") from None
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:
            # Clients are normalized to IPv4, so a mapped network must be too.
            network = ip_network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks), unix


class ClientIP:
    """The key strategy of :func:`client_ip`; :meth:`address` exposes the resolved client."""

    __slots__ = ("_header", "_ipv6_prefix", "_networks", "_unix")

    def __init__(
        self,
        trusted_proxies: Iterable[str | Network | IPAddress] = (),
        ipv6_prefix: int = 64,
        proxy_header: ProxyHeader = "x-forwarded-for",
    ) -> None:
        if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
            raise ConfigurationError(f"ipv6_prefix must be an int, got {ipv6_prefix!r}")
        if not 1 <= ipv6_prefix <= 128:
            raise ConfigurationError(f"ipv6_prefix must be between 1 and 128, got {ipv6_prefix}")
        if proxy_header not in ("x-forwarded-for", "forwarded"):
            raise ConfigurationError(
                f"proxy_header must be 'x-forwarded-for' or 'forwarded', got {proxy_header!r}"
            )
        self._networks, self._unix = _networks(trusted_proxies)
        self._ipv6_prefix = ipv6_prefix
        self._header = proxy_header

    def __repr__(self) -> str:
        trusted = [str(n) for n in self._networks] + (["unix"] if self._unix else [])
        return (
            f"client_ip(trusted_proxies={trusted!r}, ipv6_prefix={self._ipv6_prefix}, "
            f"proxy_header={self._header!r})"
        )

    def trusted(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return any(address in network for network in self._networks)

    def address(self, view: RequestView) -> IPAddress | None:
        """The client's address: the peer, or when the peer is a trusted proxy, the rightmost
        address of the forwarding header that is not a trusted proxy.

        The walk goes right to left: every entry was appended by the hop to its right, so
        only entries written by trusted proxies are ever read, and anything a client
        prepends is never reached. An ``unknown``, obfuscated or malformed entry ends the walk
        and the peer is used (malformed ones are logged). When every hop is trusted, the
        leftmost is the client. ``None`` when the peer has no IP address (a Unix socket).
        """
        peer = parse_address(view.peer) if view.peer else None
        if not (self.trusted(peer) if peer is not None else self._unix):
            return peer
        forwarded = self._header == "forwarded"
        entries = split_entries(view.header_values(self._header))
        client = peer
        for entry in reversed(entries):
            node = parse_forwarded_element(entry) if forwarded else parse_node(entry)
            if isinstance(node, Opaque):
                if node is Opaque.MALFORMED:
                    shown = entry if len(entry) <= 64 else entry[:61] + "..."
                    logger.warning(
                        "malformed %s entry %r from trusted proxy %s; keying on the proxy",
                        self._header, shown, view.peer,
                    )  # fmt: skip
                return peer
            client = node
            if not self.trusted(node):
                return node
        return client

    def __call__(self, view: RequestView) -> str:
        address = self.address(view)
        if address is None:
            return "ip:unknown"
        if isinstance(address, IPv6Address) and self._ipv6_prefix < 128:
            return f"ip:{ip_network((address, self._ipv6_prefix), strict=False)}"
        return f"ip:{address}"


def client_ip(
    trusted_proxies: Iterable[str | Network | IPAddress] = (),
    ipv6_prefix: int = 64,
    *,
    proxy_header: ProxyHeader = "x-forwarded-for",
) -> ClientIP:
    """Key by client IP address: ``ip:203.0.113.7``, ``ip:2001:db8:1:2::/64``.

    Args:
        trusted_proxies: addresses or CIDRs (``"10.0.0.0/8"``, ``"::1"``) of your own
            reverse proxies and load balancers; ``"unix"`` trusts a peer with no IP address
            (a Unix socket). The forwarding header is read only when the peer is trusted:
            any client can send one, so from anyone else it is ignored.
        ipv6_prefix: IPv6 clients are keyed by their network of this prefix length (one
            host usually owns a whole /64, so per-address keys would be trivial to evade).
        proxy_header: the header your proxies append to, ``"x-forwarded-for"`` (default) or
            ``"forwarded"`` (RFC 7239). Only that one is read: a client could forge the one
            your proxies do not write, and nothing would be appended after the forgery.

    The client is the rightmost address that is not a trusted proxy; prepending entries
    never changes it. IPv4-mapped IPv6 addresses count as IPv4. A malformed header never
    fails the request: the peer address is used and a warning is logged on the
    ``limits_core.keys`` logger. See :meth:`ClientIP.address`.
    """
    return ClientIP(trusted_proxies, ipv6_prefix, proxy_header)


# --- request attributes ------------------------------------------------------------------


def user(get_user: Callable[[RequestView], object] | None = None) -> KeyStrategy:
    """Key by authenticated user (``user:luis``); anonymous requests are exempt (``None``).

    ``get_user(view)`` returns the user (a string, an int, an object with ``identity`` or
    ``username``, or ``None``); by default the integration's user is used
    (``scope["user"]`` from Starlette's authentication, ``REMOTE_USER`` in WSGI).
    Combine with :func:`first` or use :func:`user_or_ip` to limit anonymous requests too.
    """
    if get_user is not None and not callable(get_user):
        raise ConfigurationError(f"get_user must be callable, got {get_user!r}")

    def by_user(view: RequestView) -> str | None:
        identity = view.user if get_user is None else user_id(get_user(view))
        return None if identity is None else _tagged("user", identity)

    return by_user


def route(*, with_method: bool = True) -> KeyStrategy:
    """Key by route: ``route:GET /items/{item_id}``.

    Uses the matched route template when routing has happened (per-route decorators and
    dependencies) and the request path otherwise (app-wide middleware).
    """

    def by_route(view: RequestView) -> str:
        where = view.route or view.path
        return _tagged("route", f"{view.method} {where}" if with_method else where)

    return by_route


def header(name: str) -> KeyStrategy:
    """Key by a request header's first value (``header:x-api-key:...``); exempt when absent.

    For API keys, wrap it in :func:`hashed` to keep secrets out of the store, and combine it
    with :func:`first` so requests without the header are limited too::

        keys.first(keys.hashed(keys.header("x-api-key")), keys.client_ip())
    """
    if not isinstance(name, str) or not name or not name.isascii() or not name.isprintable():
        raise ConfigurationError(f"invalid header name {name!r}")
    lower = name.lower()

    def by_header(view: RequestView) -> str | None:
        value = view.header(lower)
        return None if value is None else _tagged(f"header:{lower}", value)

    return by_header


def constant(text: str) -> KeyStrategy:
    """Always the same key part, e.g. an upstream provider: ``constant("openai")``."""
    if not isinstance(text, str) or not _storable(text, _MAX_VALUE_BYTES):
        raise ConfigurationError(
            f"constant key part must be printable text of at most {_MAX_VALUE_BYTES} "
            f"UTF-8 bytes, got {text!r}"
        )

    def fixed(view: RequestView) -> str:
        return text

    return fixed


# --- combinators -------------------------------------------------------------------------


def first(*strategies: KeyStrategy) -> KeyStrategy:
    """The first key that is not ``None``; ``None`` when every strategy exempts."""
    if not strategies:
        raise ConfigurationError("first() needs at least one strategy")
    checked = tuple(_check_strategy(s) for s in strategies)

    def first_key(view: RequestView) -> str | None:
        for strategy in checked:
            key = strategy(view)
            if key is not None:
                return key
        return None

    return first_key


def user_or_ip(
    get_user: Callable[[RequestView], object] | None = None,
    *,
    trusted_proxies: Iterable[str | Network | IPAddress] = (),
    ipv6_prefix: int = 64,
    proxy_header: ProxyHeader = "x-forwarded-for",
) -> KeyStrategy:
    """The user when authenticated (``user:luis``), the client IP otherwise (``ip:...``)."""
    return first(
        user(get_user),
        client_ip(trusted_proxies, ipv6_prefix, proxy_header=proxy_header),
    )


def _escape(part: str) -> str:
    # Percent-encode the escape character, the separator and the digest marker: the parts
    # can be recovered from the result, so different tuples give different keys.
    return part.replace("%", "%25").replace("|", "%7C").replace("#", "%23")


def compose(*strategies: KeyStrategy) -> KeyStrategy:
    """Join the keys of several strategies: ``user:luis|openai``.

    Injective: each part is escaped, so ``("a:b", "c")`` and ``("a", "b:c")`` (or
    ``("a|b", "c")`` and ``("a", "b|c")``) give different keys. If any part is ``None`` the
    request is exempt. A result too long for a key is replaced by ``#`` and its digest,
    which no unhashed composite can equal (composites never contain a bare ``#``).
    """
    if not strategies:
        raise ConfigurationError("compose() needs at least one strategy")
    checked = tuple(_check_strategy(s) for s in strategies)

    def composite(view: RequestView) -> str | None:
        parts: list[str] = []
        for strategy in checked:
            part = strategy(view)
            if part is None:
                return None
            parts.append(_escape(part))
        return fit("|".join(parts))

    return composite


def hashed(strategy: KeyStrategy, *, secret: str | bytes | None = None) -> KeyStrategy:
    """Replace a key by its BLAKE2b digest (``h:3f2a...``) to keep personal data out of the
    store; with ``secret``, a keyed digest that cannot be reversed by guessing inputs."""
    checked = _check_strategy(strategy)
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if secret is not None and not isinstance(secret, bytes):
        raise ConfigurationError(f"secret must be str or bytes, got {type(secret).__name__}")
    if secret is not None and len(secret) > hashlib.blake2b.MAX_KEY_SIZE:
        secret = hashlib.blake2b(secret).digest()  # BLAKE2b keys are at most 64 bytes

    def digest(view: RequestView) -> str | None:
        key = checked(view)
        return None if key is None else "h:" + _digest(key, secret)

    return digest
