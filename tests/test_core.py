"""Validation, errors, clocks, decisions and the facades' own behaviour."""

from __future__ import annotations

import dataclasses
import math
import pickle
import subprocess
import sys

import pytest

import limits_core
from algorithms import FixedWindow, SlidingLog, TokenBucket
from backends.memory import MemoryBackend
from limits_core import (
    AsyncLimiter,
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    Decision,
    Limiter,
    LimitsCoreError,
    ManualClock,
    Rate,
    RateLimitExceeded,
    SystemClock,
)
from limits_core.decision import decision_from_us


def test_root_all_is_sorted_and_complete() -> None:
    assert limits_core.__all__ == sorted(limits_core.__all__)
    public = {n for n in dir(limits_core) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(limits_core.__all__)
    for name in limits_core.__all__:
        assert hasattr(limits_core, name)


def test_importing_the_packages_imports_no_driver() -> None:
    code = (
        "import sys, limits_core, algorithms, backends, backends.memory\n"
        "bad = [m for m in ('redis', 'asyncpg', 'psycopg', 'starlette', 'fastapi', 'flask')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_tree() -> None:
    assert issubclass(ConfigurationError, LimitsCoreError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(BackendUnavailable, BackendError)
    assert issubclass(BackendError, LimitsCoreError)
    assert issubclass(RateLimitExceeded, LimitsCoreError)
    decision = Decision(False, 5, 0, 3.0, 2.5)
    error = RateLimitExceeded(decision)
    assert error.decision is decision
    assert "2.500" in str(error)


def test_a_decision_built_from_microseconds_is_an_ordinary_frozen_decision() -> None:
    decision = decision_from_us(False, 5, 0, 1_500_000, -1)
    assert type(decision) is Decision
    assert decision == Decision(False, 5, 0, 1.5, math.inf)
    assert hash(decision) == hash(Decision(False, 5, 0, 1.5, math.inf))
    assert decision.details == ()
    assert decision.never_allowed
    assert dataclasses.asdict(decision)["retry_after"] == math.inf
    assert pickle.loads(pickle.dumps(decision)) == decision
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.remaining = 3  # type: ignore[misc]
    assert decision_from_us(True, 5, 4, 2_000_000, 0).retry_after == 0.0


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a\x00b",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "x" * 513,
        "é" * 257,
        "\ud800",
        b"bytes",
        42,
        None,
        ("a",),
    ],
)
def test_bad_keys_are_rejected_before_any_state_is_touched(key: object) -> None:
    backend = MemoryBackend()
    limiter = Limiter(FixedWindow("1/minute"), backend)
    with pytest.raises(ConfigurationError):
        limiter.hit(key)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        limiter.peek(key)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        limiter.reset(key)  # type: ignore[arg-type]
    assert len(backend) == 0


@pytest.mark.parametrize("key", ["x" * 512, "é" * 256, "user:luis:openai", "{tag}:}{", "ключ 🔑"])
def test_good_keys_are_accepted(key: str) -> None:
    assert Limiter(FixedWindow("1/minute"), MemoryBackend()).hit(key).allowed


@pytest.mark.parametrize("cost", [0, -1, 1.0, True, "1", None, 2.5])
def test_bad_costs_are_rejected(cost: object) -> None:
    backend = MemoryBackend()
    limiter = Limiter(TokenBucket("1/minute"), backend)
    with pytest.raises(ConfigurationError):
        limiter.hit("k", cost)  # type: ignore[arg-type]
    assert len(backend) == 0


@pytest.mark.parametrize("algorithm", [FixedWindow("5/s"), SlidingLog("5/s"), TokenBucket("5/s")])
@pytest.mark.parametrize("cost", [6, 2**53, 2**200])
def test_cost_above_the_limit_is_never_allowed(algorithm: object, cost: int) -> None:
    backend = MemoryBackend()
    limiter = Limiter(algorithm, backend)  # type: ignore[arg-type]
    decision = limiter.hit("k", cost)
    assert not decision.allowed
    assert math.isinf(decision.retry_after)
    assert decision.never_allowed
    assert decision.remaining == 5
    assert len(backend) == 0


def test_limiter_rejects_wrong_collaborators() -> None:
    with pytest.raises(ConfigurationError):
        Limiter("100/minute", MemoryBackend())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Limiter(FixedWindow("1/s"), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncLimiter(FixedWindow("1/s"), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Limiter(FixedWindow("1/s"), MemoryBackend(), clock=123)  # type: ignore[arg-type]


def test_design_contract_example() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    with Limiter(SlidingLog("3/second"), MemoryBackend(), clock=clock) as limiter:
        assert [limiter.hit("user:luis:openai").allowed for _ in range(4)] == [True] * 3 + [False]
        assert not limiter.peek("user:luis:openai").allowed
        clock.advance(1.0)
        assert limiter.hit("user:luis:openai").allowed
        limiter.reset("user:luis:openai")
        assert limiter.peek("user:luis:openai").remaining == 2
    assert FixedWindow("100/minute") == FixedWindow(Rate(100, 60))
    assert TokenBucket("10/second").burst == 10
    assert TokenBucket("10/second", burst=20).limit == 20


async def test_async_facade_and_context_manager() -> None:
    clock = ManualClock()
    async with AsyncLimiter(TokenBucket("10/second", burst=2), MemoryBackend(), clock=clock) as lim:
        assert (await lim.hit("k")).allowed
        assert (await lim.hit("k")).allowed
        denied = await lim.hit("k")
        assert not denied.allowed
        assert denied.retry_after == pytest.approx(0.1)
        assert not (await lim.peek("k")).allowed
        await lim.reset("k")
        assert (await lim.peek("k")).remaining == 1


def test_one_memory_backend_serves_both_facades() -> None:
    backend, clock = MemoryBackend(), ManualClock()
    algorithm = FixedWindow("2/minute")
    sync = Limiter(algorithm, backend, clock=clock)
    sync.hit("shared")

    async def other() -> Decision:
        return await AsyncLimiter(algorithm, backend, clock=clock).hit("shared")

    import asyncio

    assert asyncio.run(other()).remaining == 0


def test_algorithms_with_different_parameters_do_not_share_state() -> None:
    backend, clock = MemoryBackend(), ManualClock()
    Limiter(FixedWindow("1/minute"), backend, clock=clock).hit("k")
    assert Limiter(FixedWindow("2/minute"), backend, clock=clock).hit("k").remaining == 1
    assert Limiter(SlidingLog("1/minute"), backend, clock=clock).hit("k").allowed


def test_token_bucket_rejects_rates_it_cannot_count_exactly() -> None:
    with pytest.raises(ConfigurationError, match="exactly"):
        TokenBucket("999983/day")
    assert TokenBucket("1000000/day").burst == 1_000_000
    with pytest.raises(ConfigurationError):
        TokenBucket("10/s", burst=0)


def test_manual_clock() -> None:
    clock = ManualClock(start=100.0)
    clock.advance(1.5)
    assert clock.now() == 101.5
    assert clock.now_us() == 101_500_000
    clock.set(50)
    clock.advance(-10)
    assert clock.now() == 40.0
    for bad in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigurationError):
            clock.advance(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        clock.set(-1)
    with pytest.raises(ConfigurationError):
        clock.advance(-1000)
    assert abs(SystemClock().now_us() / 1e6 - __import__("time").time()) < 5


def test_cli_runs_the_demo_in_process_and_as_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    from limits_core.cli import main

    assert main(["demo", "--seconds", "2", "--per-second", "20", "--rate", "10/second"]) == 0
    out = capsys.readouterr().out
    for name in ("FixedWindow", "SlidingLog", "TokenBucket", "decisions per second"):
        assert name in out
    proc = subprocess.run(
        [sys.executable, "-m", "limits_core", "demo", "--seconds", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "TokenBucket" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "limits_core", "nope"], capture_output=True)
    assert bad.returncode == 2
