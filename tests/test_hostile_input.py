"""Hostile input: keys, costs, limits, rate strings and forwarding headers. The only outcomes
allowed are a typed error or a documented decision: never a crash, never a driver's
exception, and never corrupted state (after garbage, normal calls still follow the model),
on every backend."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import GCRA, FixedWindow, TokenBucket
from backends.memory import MemoryBackend
from limits_core import AsyncLimiter, ConfigurationError, Rate, keys
from limits_core.algorithm import Algorithm
from limits_core.asgi import RateLimitMiddleware
from limits_core.rate import MAX_LIMIT, MAX_PERIOD
from limits_core.validation import MAX_KEY_BYTES
from tests.conftest import MakeLimiter
from tests.support.programs import (
    Advance,
    Hit,
    Model,
    Op,
    Peek,
    Reset,
    advances,
    new_clock,
    run_model,
    run_sync,
)

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_keys = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="{}:%\\*?[]\"' \t\n\x00\x7f\u200b\ud7ff\U0001f511", max_size=40),
    st.builds(lambda n, c: c * n, st.integers(120, 600), st.sampled_from("a{é🔑")),
)


def _valid(key: str) -> bool:
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    control = any(ord(c) < 32 or 127 <= ord(c) < 160 for c in key)
    return 0 < size <= MAX_KEY_BYTES and not control


@fixture_ok
@given(key=hostile_keys)
def test_any_text_key_is_refused_cleanly_or_limited(
    make_limiter: MakeLimiter, algorithm: Algorithm, key: str
) -> None:
    with make_limiter(algorithm, new_clock()) as limiter:
        if not _valid(key):
            with pytest.raises(ConfigurationError):
                limiter.hit(key)
            return
        first = limiter.hit(key, algorithm.limit)
        assert first.allowed
        assert not limiter.hit(key).allowed
        limiter.reset(key)
        assert limiter.peek(key).remaining == algorithm.limit - 1


def test_a_megabyte_key_is_refused(make_limiter: MakeLimiter, algorithm: Algorithm) -> None:
    with make_limiter(algorithm, new_clock()) as limiter, pytest.raises(ConfigurationError):
        limiter.hit("{" * 1_000_000)


@pytest.mark.parametrize("extra", [0, 1, 2, 10**6, 2**53, 2**64, 2**200])
def test_costs_at_the_edges(make_limiter: MakeLimiter, algorithm: Algorithm, extra: int) -> None:
    with make_limiter(algorithm, new_clock()) as limiter:
        cost = algorithm.limit + extra
        decision = limiter.hit("edge", cost)
        if extra == 0:
            assert decision.allowed
            assert decision.remaining == 0
        else:
            assert not decision.allowed
            assert math.isinf(decision.retry_after)
            assert limiter.peek("edge").remaining == algorithm.limit - 1


# -- garbage between normal calls: refused, and the state goes on as the model says ----------

#: Keys the limiter must refuse: empty, control characters, lone surrogates, over 512 bytes.
bad_keys = st.one_of(
    st.just(""),
    st.text(alphabet="\x00\x01\n\r\t\x1b\x7f\x85\x9f", min_size=1, max_size=5).map(
        lambda s: "k" + s
    ),
    st.just("\ud800"),
    st.integers(513, 5000).map(lambda n: "x" * n),
    st.just("{" * 1_000_000),
    st.sampled_from([None, b"key", 7, ("a",)]),
)
#: Costs the limiter must refuse before any state is touched.
bad_costs = st.sampled_from([0, -1, -(2**64), True, False, 1.0, 1.5, "1", None, float("nan")])


@st.composite
def hostile_programs(draw: st.DrawFn, algorithm: Algorithm) -> list[Op | tuple[str, object]]:
    """Normal operations (on keys that hash-tag and quote badly) mixed with refused calls
    and costs at and past the edges: 1, the limit, limit + 1, 2**53 and beyond."""
    limit = algorithm.limit
    key = st.sampled_from(["k", "{k}", "'k'", "k%7B"])
    cost = st.sampled_from([1, limit - 1 or 1, limit, limit + 1, 2**53, 2**53 + 1, 2**64, 2**300])
    op = st.one_of(
        advances(algorithm.max_state_ttl_us),
        st.builds(Hit, key, cost),
        st.builds(Peek, key, cost),
        st.builds(Reset, key),
        st.tuples(st.just("bad key"), bad_keys),
        st.tuples(st.just("bad cost"), bad_costs),
    )
    return draw(st.lists(op, max_size=25))


# Each example opens a backend (a pool, on PostgreSQL): bounded apart from the profile so the
# CI run stays short.
@settings(fixture_ok, max_examples=min(60, settings.default.max_examples))
@given(data=st.data())
def test_garbage_is_refused_and_leaves_the_state_as_the_model_says(
    make_limiter: MakeLimiter, algorithm: Algorithm, data: st.DataObject
) -> None:
    program = data.draw(hostile_programs(algorithm))
    clock = new_clock()
    model = Model(algorithm)
    with make_limiter(algorithm, clock) as limiter:
        for op in program:
            if isinstance(op, tuple):
                kind, value = op
                args = (value,) if kind == "bad key" else ("k", value)
                for call in (limiter.hit, limiter.peek):
                    with pytest.raises(ConfigurationError):
                        call(*args)  # type: ignore[arg-type]
                if kind == "bad key":
                    with pytest.raises(ConfigurationError):
                        limiter.reset(value)  # type: ignore[arg-type]
                continue
            got = run_sync(limiter, clock, [op])[0]
            assert got == model.apply(op), op


@pytest.mark.parametrize("limit", [1, 2, 2**20, 2**31, MAX_LIMIT])
def test_limits_at_the_edges_agree_with_the_model(make_limiter: MakeLimiter, limit: int) -> None:
    """The smallest and largest limits (a larger one is refused by `Rate`), with costs of 1,
    the limit and past it, under a frozen clock."""
    # One token per 5 minutes when the period allows it, else the limit per minute (one token
    # of 10**12 per minute is 60 ns: Redis keeps it under the one-second TTL floor of an
    # injected clock).
    period = limit * 300 if limit * 300 <= MAX_PERIOD else 60
    algorithms: list[Algorithm] = [
        FixedWindow(Rate(limit, 60)),
        TokenBucket(Rate(limit, period)),
        GCRA(Rate(limit, period)),
    ]
    for algorithm in algorithms:
        program: list[Op] = [
            Hit("k", 1),
            Peek("k", limit),
            Hit("k", limit),
            Hit("k", limit + 1),
            Advance(30_000_000),
            Peek("k", 1),
            Hit("k", max(1, limit // 2)),
            Advance(algorithm.max_state_ttl_us + 1),
            Hit("k", limit),
            Hit("k", 1),
        ]
        clock = new_clock()
        with make_limiter(algorithm, clock) as limiter:
            assert run_sync(limiter, clock, program) == run_model(algorithm, program), algorithm


# -- Rate.parse on near-valid text ----------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "second": 1, "m": 60, "minutes": 60, "h": 3600, "d": 86_400, "w": 604_800}
rate_pieces = st.lists(
    st.one_of(
        st.integers(0, 10**30).map(str),
        st.sampled_from(["/", " per ", "  ", "\t", ".", "-", "+", "e3", "0x10", "_"]),
        st.sampled_from(sorted(_UNIT_SECONDS)),
        st.sampled_from(["\u0663", "\uff11", "\u00b2", "\u200b", "\x00", "\u2044", "秒", "\u017f"]),
    ),
    max_size=6,
)


@given(pieces=rate_pieces)
def test_rate_parse_near_valid_text_is_a_rate_or_a_typed_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        rate = Rate.parse(text)
    except ConfigurationError:
        return
    assert 1 <= rate.limit <= MAX_LIMIT
    assert 0 < rate.period <= MAX_PERIOD
    assert Rate.parse(str(rate)) == rate  # what was accepted means one thing


@given(
    limit=st.integers(1, MAX_LIMIT),
    count=st.integers(1, 99),
    unit=st.sampled_from(sorted(_UNIT_SECONDS)),
    pad=st.sampled_from(["", " ", "  ", "\t"]),
)
def test_rate_parse_reads_what_was_written(limit: int, count: int, unit: str, pad: str) -> None:
    for text in (f"{pad}{limit}{pad}/{pad}{count}{unit}{pad}", f"{limit} per {count} {unit}"):
        period = count * _UNIT_SECONDS[unit]
        if period > MAX_PERIOD:
            with pytest.raises(ConfigurationError):
                Rate.parse(text)
        else:
            assert Rate.parse(text) == Rate(limit, period)


# -- forwarding headers through the whole ASGI middleware -----------------------------------

_ip_text = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:443"),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.sampled_from(["unknown", "_hidden", "fe80::1%eth0", "[::1", "1.2.3.4:99999"]),
)
_raw_value = st.one_of(
    st.binary(max_size=300),
    st.lists(_ip_text, max_size=40).map(lambda ips: ", ".join(ips).encode()),
    st.lists(_ip_text, max_size=10).map(lambda ips: ", ".join(f'for="{i}"' for i in ips).encode()),
    st.integers(1000, 5000).map(lambda n: b", ".join([b"203.0.113.9"] * n)),
)
_raw_headers = st.lists(
    st.tuples(st.sampled_from([b"x-forwarded-for", b"forwarded", b"x-user", b"host"]), _raw_value),
    max_size=6,
)


@given(headers=_raw_headers, peer=st.sampled_from(["10.0.0.2", "203.0.113.7", "::1"]))
async def test_any_forwarding_headers_get_an_answer_from_the_middleware(
    headers: list[tuple[bytes, bytes]], peer: str
) -> None:
    """Raw header bytes (garbage, thousands of entries, every IPv6 form), for both header
    kinds, through the middleware: every request gets an answer (200 or 429), never an error,
    and a key the store accepts."""
    backend = MemoryBackend()
    limiter = AsyncLimiter(FixedWindow("2/minute"), backend)
    answers: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    for header in ("x-forwarded-for", "forwarded"):
        strategy = keys.client_ip(trusted_proxies=["10.0.0.0/8", "::1"], proxy_header=header)
        middleware = RateLimitMiddleware(app, limiter=limiter, key=strategy, on_error="closed")
        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers,
                 "client": (peer, 1234), "query_string": b""}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any], /) -> None:
            if message["type"] == "http.response.start":
                answers.append(message["status"])

        for _ in range(3):
            await middleware(scope, receive, send)
    assert set(answers) <= {200, 429}
    assert len(answers) == 6
    assert answers[2] == 429  # the third request of one client in a minute: the key held
    assert 1 <= len(backend) <= 2
