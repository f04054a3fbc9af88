"""Key strategies: client IPs that can't be spoofed, injective composition, safe keys."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from limits_core import ConfigurationError, keys
from limits_core.request import RequestView, from_asgi, from_wsgi
from limits_core.validation import check_key

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
LB = "10.0.0.2"  # the load balancer, the peer of every proxied request below


def view(peer: str | None = LB, *headers: tuple[str, str], **fields: object) -> RequestView:
    return RequestView("GET", "/", headers=tuple(headers), peer=peer, **fields)  # type: ignore[arg-type]


def xff(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple(("x-forwarded-for", value) for value in values)


ip = keys.client_ip(trusted_proxies=PROXIES)
fwd = keys.client_ip(trusted_proxies=PROXIES, proxy_header="forwarded")


# --- client_ip: X-Forwarded-For -------------------------------------------------------------


def test_no_proxy_header_keys_by_peer() -> None:
    assert ip(view("203.0.113.7")) == "ip:203.0.113.7"
    assert ip(view(LB)) == "ip:10.0.0.2"


def test_untrusted_peer_cannot_choose_its_key_with_the_header() -> None:
    spoofed = view("203.0.113.7", *xff("198.51.100.1"))
    assert ip(spoofed) == "ip:203.0.113.7"
    assert keys.client_ip()(spoofed) == "ip:203.0.113.7"  # nothing trusted by default


def test_trusted_peer_gives_the_rightmost_untrusted_address() -> None:
    assert ip(view(LB, *xff("203.0.113.7"))) == "ip:203.0.113.7"
    assert ip(view(LB, *xff("203.0.113.7, 10.1.2.3, 10.9.9.9"))) == "ip:203.0.113.7"


def test_prepended_entries_do_not_change_the_key() -> None:
    honest = ip(view(LB, *xff("203.0.113.7, 10.1.2.3")))
    for forged in ("1.2.3.4", "10.0.0.1", "garbage", "unknown", '"', "1.2.3.4, 5.6.7.8", ""):
        assert ip(view(LB, *xff(f"{forged}, 203.0.113.7, 10.1.2.3"))) == honest
        # ... also when the client sends its own header line and the proxy adds another one
        assert ip(view(LB, *xff(forged, "203.0.113.7, 10.1.2.3"))) == honest


def test_all_header_lines_are_one_list() -> None:
    assert ip(view(LB, *xff("203.0.113.7", "10.1.2.3"))) == "ip:203.0.113.7"
    assert ip(view(LB, *xff("198.51.100.1", "203.0.113.7"))) == "ip:203.0.113.7"


def test_every_hop_trusted_gives_the_leftmost() -> None:
    assert ip(view(LB, *xff("10.7.7.7, 10.1.2.3"))) == "ip:10.7.7.7"


def test_ports_and_brackets_are_accepted() -> None:
    assert ip(view(LB, *xff("203.0.113.7:51234"))) == "ip:203.0.113.7"
    assert ip(view(LB, *xff("[2001:db8:1:2::7]:443"))) == "ip:2001:db8:1:2::/64"
    assert ip(view(LB, *xff("[2001:db8:1:2::7]"))) == "ip:2001:db8:1:2::/64"


def test_malformed_entry_falls_back_to_the_peer_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="limits_core"):
        assert ip(view(LB, *xff("203.0.113.7, not-an-ip"))) == "ip:10.0.0.2"
    assert any("malformed x-forwarded-for" in r.getMessage() for r in caplog.records)
    assert caplog.records[0].name.startswith("limits_core")


@pytest.mark.parametrize("stop", ["unknown", "_hidden", "UNKNOWN"])
def test_unknown_and_obfuscated_entries_stop_the_walk_quietly(
    stop: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="limits_core"):
        assert ip(view(LB, *xff(f"203.0.113.7, {stop}"))) == "ip:10.0.0.2"
    assert not caplog.records


@pytest.mark.parametrize(
    "garbage",
    [
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4:port",
        "[1.2.3.4]",
        "[2001:db8::1",
        "[2001:db8::1]:x",
        "2001:db8::1:99999",
        "\x00\xff",
        "٣.٣.٣.٣",  # non-ASCII digits
        "1.2.3.4 5.6.7.8",
        "a" * 10_000,
    ],
)
def test_garbage_never_raises(garbage: str) -> None:
    assert ip(view(LB, *xff(garbage))) == "ip:10.0.0.2"


# --- client_ip: Forwarded (RFC 7239) --------------------------------------------------------


def fwd_view(*values: str, peer: str = LB) -> RequestView:
    return view(peer, *(("forwarded", value) for value in values))


def test_forwarded_with_quoted_ipv6_and_port() -> None:
    assert fwd(fwd_view('for="[2001:db8:cafe::17]:4711"')) == "ip:2001:db8:cafe::/64"
    assert fwd(fwd_view('For="[2001:db8:cafe::17]";proto=https')) == "ip:2001:db8:cafe::/64"


def test_forwarded_rightmost_untrusted_with_parameters() -> None:
    header = 'for=198.51.100.1;proto=http, for="203.0.113.7:8080";by=10.1.1.1, for=10.1.2.3'
    assert fwd(fwd_view(header)) == "ip:203.0.113.7"
    assert fwd(fwd_view("for=198.51.100.1", "for=203.0.113.7;host=example.com")) == (
        "ip:203.0.113.7"
    )


def test_forwarded_spoofing_by_prepending_or_bad_quoting() -> None:
    honest = fwd(fwd_view("for=203.0.113.7"))
    assert honest == "ip:203.0.113.7"
    for forged in ('for="1.2.3.4', 'for="[::1]:1", for=unknown', "for=1.1.1.1;for=2.2.2.2", ";;"):
        assert fwd(fwd_view(f"{forged}, for=203.0.113.7")) == honest
        assert fwd(fwd_view(forged, "for=203.0.113.7")) == honest


@pytest.mark.parametrize(
    "element",
    ["for=unknown", 'for="_gazonk"', "for=_hidden", "proto=https", "for=1.2.3.4;for=5.6.7.8",
     'for="[2001:db8::1"', "for", 'for="1.2.3.4'],
)  # fmt: skip
def test_forwarded_opaque_or_bad_element_falls_back_to_peer(element: str) -> None:
    assert fwd(fwd_view(f"for=203.0.113.7, {element}")) == "ip:10.0.0.2"


def test_each_client_ip_reads_only_its_own_header() -> None:
    both = view(LB, ("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=198.51.100.1"))
    assert ip(both) == "ip:203.0.113.7"
    assert fwd(both) == "ip:198.51.100.1"
    assert fwd(view(LB, ("x-forwarded-for", "203.0.113.7"))) == "ip:10.0.0.2"


def test_untrusted_peer_sending_forwarded_is_ignored() -> None:
    assert fwd(fwd_view("for=198.51.100.1", peer="203.0.113.7")) == "ip:203.0.113.7"


# --- client_ip: address forms ---------------------------------------------------------------


def test_ipv6_grouped_by_prefix() -> None:
    a = view("2001:db8:1:2:aaaa::1")
    b = view("2001:db8:1:2:bbbb::2")
    other = view("2001:db8:1:3::1")
    assert ip(a) == ip(b) == "ip:2001:db8:1:2::/64"
    assert ip(other) != ip(a)
    wide = keys.client_ip(ipv6_prefix=48)
    assert wide(a) == wide(other) == "ip:2001:db8:1::/48"
    exact = keys.client_ip(ipv6_prefix=128)
    assert exact(a) == "ip:2001:db8:1:2:aaaa::1" != exact(b)


def test_ipv4_mapped_ipv6_is_normalized() -> None:
    assert ip(view("::ffff:203.0.113.7")) == "ip:203.0.113.7"
    assert ip(view("::ffff:10.0.0.2", *xff("::ffff:203.0.113.7"))) == "ip:203.0.113.7"
    mapped_proxies = keys.client_ip(trusted_proxies=["::ffff:10.0.0.0/104"])
    assert mapped_proxies(view(LB, *xff("203.0.113.7"))) == "ip:203.0.113.7"


def test_zone_ids_are_dropped() -> None:
    assert keys.client_ip(ipv6_prefix=128)(view("fe80::1%eth0")) == "ip:fe80::1"


def test_trusted_proxy_forms() -> None:
    single = keys.client_ip(trusted_proxies=[ip_address("10.0.0.2"), "2001:db8::1"])
    assert single(view(LB, *xff("203.0.113.7"))) == "ip:203.0.113.7"
    assert single(view("10.0.0.3", *xff("203.0.113.7"))) == "ip:10.0.0.3"
    assert single(view("2001:db8::1", *xff("203.0.113.7"))) == "ip:203.0.113.7"


def test_unix_socket_peer() -> None:
    assert ip(view(None, *xff("203.0.113.7"))) == "ip:unknown"
    behind_socket = keys.client_ip(trusted_proxies=["unix"])
    assert behind_socket(view(None, *xff("203.0.113.7"))) == "ip:203.0.113.7"
    assert behind_socket(view("testclient")) == "ip:unknown"


@pytest.mark.parametrize(
    "options",
    [
        {"trusted_proxies": "10.0.0.0/8"},
        {"trusted_proxies": ["10.0.0.0/33"]},
        {"trusted_proxies": ["example.com"]},
        {"trusted_proxies": [None]},
        {"ipv6_prefix": 0},
        {"ipv6_prefix": 129},
        {"ipv6_prefix": True},
        {"proxy_header": "x-real-ip"},
    ],
)
def test_client_ip_rejects_bad_configuration(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        keys.client_ip(**options)  # type: ignore[arg-type]


# --- client_ip: fuzzing ---------------------------------------------------------------------

header_text = st.text(st.characters(codec="latin-1"), max_size=200)
ipv6 = st.ip_addresses(v=6)
ipv4 = st.ip_addresses(v=4)


def ipv6_forms(address: IPv4Address | IPv6Address) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [str(address), address.exploded, f"[{address}]", f"[{address}]:443", f"[{address}]:_p"]
    )


node_text = st.one_of(
    ipv4.map(str),
    ipv4.map(lambda a: f"{a}:8080"),
    ipv6.flatmap(ipv6_forms),
    ipv4.map(lambda a: f"::ffff:{a}"),
    st.sampled_from(["unknown", "_hidden", "", " ", "[", "]:", '"', ";", "="]),
    header_text,
)


def expected_outcomes(v: RequestView, strategy: keys.ClientIP) -> set[str]:
    """The documented outcomes: the peer, or one of the addresses found in the header."""
    outcomes = {"ip:unknown", strategy(RequestView("GET", "/", peer=v.peer))}
    for _, value in v.headers:
        for token in value.replace("[", " ").replace("]", " ").replace('"', " ").split(","):
            for word in token.replace(";", " ").replace("=", " ").split():
                for candidate in (word, word.rpartition(":")[0]):
                    try:
                        address = ip_address(candidate)
                    except ValueError:
                        continue
                    outcomes.add(strategy(RequestView("GET", "/", peer=str(address))))
    return outcomes


@given(
    entries=st.lists(node_text, max_size=30),
    lines=st.integers(1, 3),
    peer=st.sampled_from([LB, "203.0.113.7", "2001:db8:ffff::1", None]),
)
@example(entries=["1.2.3.4"] * 5000, lines=1, peer=LB)
@example(entries=[f"10.0.{i // 256}.{i % 256}" for i in range(3000)], lines=2, peer=LB)
def test_fuzz_x_forwarded_for(entries: list[str], lines: int, peer: str | None) -> None:
    size = max(1, len(entries) // lines)
    values = [", ".join(entries[i : i + size]) for i in range(0, len(entries), size)] or [""]
    v = view(peer, *xff(*values))
    key = ip(v)
    check_key(key)
    assert key in expected_outcomes(v, ip)


forwarded_element = st.one_of(
    node_text.map(lambda n: f"for={n}"),
    node_text.map(lambda n: f'for="{n}"'),
    st.tuples(node_text, header_text).map(lambda t: f'for="{t[0]}";proto={t[1]}'),
    header_text,
)


@given(
    elements=st.lists(forwarded_element, max_size=20),
    peer=st.sampled_from([LB, "203.0.113.7", "2001:db8:ffff::1"]),
)
@example(elements=['for="[2001:db8::1]:1"'] * 4000, peer=LB)
def test_fuzz_forwarded(elements: list[str], peer: str) -> None:
    v = fwd_view(", ".join(elements), peer=peer)
    key = fwd(v)
    check_key(key)
    assert key in expected_outcomes(v, fwd)


@given(
    client=st.one_of(ipv4, ipv6),
    hops=st.lists(st.sampled_from(["10.1.2.3", "10.200.0.1", "2001:db8:ffff::9"]), max_size=4),
    forged=st.lists(node_text, max_size=10),
)
def test_prepending_anything_never_changes_the_key(
    client: IPv4Address | IPv6Address, hops: list[str], forged: list[str]
) -> None:
    if ip.trusted(client) or (isinstance(client, IPv6Address) and client.ipv4_mapped):
        return
    node = f"[{client}]" if client.version == 6 else str(client)
    chain = ", ".join([node, *hops])
    honest = ip(view(LB, *xff(chain)))
    assert honest == ip(view(str(client)))
    assert ip(view(LB, *xff(", ".join([*forged, chain])))) == honest
    assert ip(view(LB, *xff(", ".join(forged), chain))) == honest
    quoted = ", ".join(f'for="{h}"' for h in [node, *hops])
    assert fwd(fwd_view(", ".join(f"for={f}" for f in forged), quoted)) == honest


# --- other strategies -----------------------------------------------------------------------


def test_user_strategy() -> None:
    assert keys.user()(view(user="luis")) == "user:luis"
    assert keys.user()(view()) is None
    by_header = keys.user(lambda v: v.header("x-user"))
    assert by_header(view(LB, ("x-user", "ana"))) == "user:ana"
    assert keys.user(lambda v: 42)(view()) == "user:42"
    assert keys.user(lambda v: "")(view()) is None


def test_user_or_ip() -> None:
    strategy = keys.user_or_ip(trusted_proxies=PROXIES)
    assert strategy(view(LB, *xff("203.0.113.7"), user="luis")) == "user:luis"
    assert strategy(view(LB, *xff("203.0.113.7"))) == "ip:203.0.113.7"
    # a user named like an address never shares the address's key
    assert strategy(view(user="203.0.113.7")) != strategy(view("203.0.113.7"))


def test_route_strategy() -> None:
    routed = RequestView("POST", "/items/7", route="/items/{item_id}")
    assert keys.route()(routed) == "route:POST /items/{item_id}"
    assert keys.route(with_method=False)(routed) == "route:/items/{item_id}"
    assert keys.route()(RequestView("GET", "/items/7")) == "route:GET /items/7"


def test_header_and_constant_strategies() -> None:
    api_key = keys.header("X-API-Key")
    assert api_key(view(LB, ("x-api-key", "k1"), ("x-api-key", "k2"))) == "header:x-api-key:k1"
    assert api_key(view()) is None
    assert keys.constant("openai")(view()) == "openai"
    for bad in ("", "a\nb", "x" * 200, 7):
        with pytest.raises(ConfigurationError):
            keys.constant(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        keys.header("bad\nname")


@pytest.mark.parametrize(
    "value", ["x" * 5000, "\x00\x1f", "caf\x85", "\ud800", "é" * 100, "line\r\nbreak"]
)
def test_long_or_unsafe_values_become_valid_digest_keys(value: str) -> None:
    for strategy in (keys.header("x-api-key"), keys.user(lambda v: value)):
        key = strategy(view(LB, ("x-api-key", value)))
        assert key is not None
        check_key(key)
        assert "#" in key
        assert value not in key


def test_first_and_exemption() -> None:
    strategy = keys.first(keys.header("x-api-key"), keys.constant("anonymous"))
    assert strategy(view(LB, ("x-api-key", "k"))) == "header:x-api-key:k"
    assert strategy(view()) == "anonymous"
    assert keys.first(keys.user())(view()) is None
    with pytest.raises(ConfigurationError):
        keys.first()


def test_compose_is_injective_on_the_classic_case() -> None:
    a = keys.compose(keys.constant("a:b"), keys.constant("c"))
    b = keys.compose(keys.constant("a"), keys.constant("b:c"))
    assert a(view()) != b(view())
    seed = keys.compose(keys.user(), keys.constant("openai"))
    assert seed(view(user="luis")) == "user:luis|openai"
    assert seed(view()) is None  # any part None exempts
    with pytest.raises(ConfigurationError):
        keys.compose()
    with pytest.raises(ConfigurationError):
        keys.compose("not callable")  # type: ignore[arg-type]


parts = st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8))


@given(first_parts=parts, second_parts=parts)
@example(first_parts=["a:b", "c"], second_parts=["a", "b:c"])
@example(first_parts=["a|b", "c"], second_parts=["a", "b|c"])
@example(first_parts=["a%7Cb"], second_parts=["a|b"])
@example(first_parts=["#x"], second_parts=["%23x"])
def test_compose_is_injective(first_parts: list[str], second_parts: list[str]) -> None:
    def composed(values: list[str]) -> str | None:
        strategies = [(lambda v, s=s: s) for s in values]
        return keys.compose(*strategies)(view()) if strategies else None

    if first_parts != second_parts:
        assert composed(first_parts) != composed(second_parts)


def test_compose_too_long_is_digested() -> None:
    long_part = keys.header("x-a")
    strategy = keys.compose(*[long_part] * 10)
    key = strategy(view(LB, ("x-a", "v" * 120)))
    assert key is not None
    assert key.startswith("#")
    check_key(key)


def test_hashed_keeps_personal_data_out() -> None:
    plain = keys.hashed(keys.user())
    secret = keys.hashed(keys.user(), secret="s3cret")
    long_secret = keys.hashed(keys.user(), secret=b"k" * 100)
    luis, ana = view(user="luis"), view(user="ana")
    for strategy in (plain, secret, long_secret):
        key = strategy(luis)
        assert key is not None
        assert key.startswith("h:")
        assert "luis" not in key
        check_key(key)
        assert key == strategy(luis) != strategy(ana)
    assert plain(luis) != secret(luis) != long_secret(luis)
    assert plain(view()) is None
    with pytest.raises(ConfigurationError):
        keys.hashed(keys.user(), secret=3)  # type: ignore[arg-type]


def test_fit() -> None:
    assert keys.fit("user:luis") == "user:luis"
    for bad in ("x" * 600, "a\x00b", ""):
        fitted = keys.fit(bad)
        assert fitted.startswith("#")
        check_key(fitted)


# --- request views --------------------------------------------------------------------------


class _User:
    def __init__(self, name: str | None) -> None:
        self.username = name
        self.is_authenticated = name is not None


def test_from_asgi() -> None:
    scope = {
        "type": "http",
        "method": "post",
        "path": "/items/1",
        "query_string": b"a=1",
        "headers": [(b"X-Forwarded-For", b"1.2.3.4"), (b"x-forwarded-for", b"\xe9")],
        "client": ("10.0.0.2", 5000),
        "user": _User("luis"),
    }
    v = from_asgi(scope)
    assert (v.method, v.path, v.query, v.peer, v.user, v.route) == (
        "POST", "/items/1", "a=1", "10.0.0.2", "luis", None,
    )  # fmt: skip
    assert v.header_values("X-Forwarded-For") == ["1.2.3.4", "é"]
    assert v.header("x-missing") is None
    assert from_asgi({"type": "http", "user": _User(None)}).user is None
    assert from_asgi({"type": "http"}).peer is None


def test_from_wsgi() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/items",
        "QUERY_STRING": "q=1",
        "REMOTE_ADDR": "10.0.0.2",
        "REMOTE_USER": "luis",
        "HTTP_X_FORWARDED_FOR": "1.2.3.4, 5.6.7.8",
        "CONTENT_TYPE": "text/plain",
        "wsgi.input": None,
    }
    v = from_wsgi(environ, route="/items")
    assert (v.path, v.peer, v.user, v.route) == ("/app/items", "10.0.0.2", "luis", "/items")
    assert v.header("x-forwarded-for") == "1.2.3.4, 5.6.7.8"
    assert v.header("content-type") == "text/plain"


def test_the_core_imports_no_web_framework() -> None:
    code = (
        "import sys, limits_core, limits_core.keys, limits_core.headers, limits_core.gate, "
        "limits_core.wsgi; from limits_core import keys; "
        "print(sorted(m for m in ('starlette', 'fastapi', 'flask', 'werkzeug', 'httpx') "
        "if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
