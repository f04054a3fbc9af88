"""The accuracy benchmark measures what the algorithms promise (a short run, no plot)."""

from __future__ import annotations

from benchmarks import accuracy
from limits_core import Rate

RATE = Rate(20, 10.0)


def test_rows_show_each_algorithms_promise() -> None:
    rows, _ = accuracy.measure(RATE, periods=4)
    by = {(r.pattern, r.algorithm): r for r in rows}
    assert {p for p, _ in by} == set(accuracy.PATTERNS)
    for pattern in accuracy.PATTERNS:
        log = by[pattern, "SlidingLog"]
        assert log.worst_ratio <= 1.0
        assert log.false_denial_rate == log.needless_denial_rate == 0.0
        assert by[pattern, "SlidingWindowCounter"].worst_ratio < 2.0
        # GCRA and the leaky bucket admit exactly what the token bucket admits.
        bucket = by[pattern, "TokenBucket"]
        for twin in ("GCRA", "LeakyBucket"):
            other = by[pattern, twin]
            assert (other.admitted, other.worst_ratio) == (bucket.admitted, bucket.worst_ratio)
    for name in accuracy.ALGORITHMS:
        steady = by["steady", name]
        assert steady.admitted == steady.requests
    # The boundary attack doubles the fixed window, and only the fixed window.
    assert by["boundary", "FixedWindow"].worst_ratio > 1.8
    assert by["boundary", "SlidingWindowCounter"].worst_ratio <= 1.1
    assert by["boundary", "SlidingLog"].state_bytes > 10 * by["boundary", "GCRA"].state_bytes


def test_patterns_are_sorted_and_reproducible() -> None:
    for make in accuracy.PATTERNS.values():
        times = make(RATE, 4)
        assert times == sorted(times) == make(RATE, 4)
        assert times
        assert times[-1] < 4 * RATE.period_us


def test_markdown_table() -> None:
    rows, _ = accuracy.measure(RATE, periods=2)
    text = accuracy.markdown(rows, RATE, 2)
    assert text.count("\n| ") == len(rows) + 1
    assert "| boundary | FixedWindow |" in text
