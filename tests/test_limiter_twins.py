"""The sync and async facades must not drift: their hot paths are textually the same."""

from __future__ import annotations

import inspect
import re

from limits_core.limiter import AsyncLimiter, Limiter


def _body(function: object) -> str:
    source = inspect.getsource(function)  # type: ignore[arg-type]
    # The substitutions of an unasync pass: what makes the async twin async.
    for pattern, sync in (
        (r"\basync def\b", "def"),
        (r"\bawait ", ""),
        (r"\.a(reset|close)\(", r".\1("),
        (r'"adecide_many"', '"decide_many"'),
    ):
        source = re.sub(pattern, sync, source)
    return source


def test_hit_and_peek_are_twins() -> None:
    for name in ("hit", "peek", "refund", "reset", "hit_many"):
        assert _body(getattr(Limiter, name)) == _body(getattr(AsyncLimiter, name))


def test_hit_and_peek_share_the_fast_path() -> None:
    hit, peek = _body(Limiter.hit).splitlines(), _body(Limiter.peek).splitlines()
    differing = [(a, b) for a, b in zip(hit, peek, strict=True) if a != b]
    # Only the name, the docstring and the consume flag differ.
    assert len(differing) == 3
