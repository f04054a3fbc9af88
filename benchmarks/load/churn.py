"""Key churn on the in-memory backend: millions of distinct keys over time, and the process's
resident memory (RSS) while they come and expire.

    python -m benchmarks.load.churn --keys 10000000

Each key is hit once (a new client, a rotated IP) under ``FixedWindow("5/second")``, so its
state matters for one second. The clock is a :class:`~limits_core.ManualClock` advanced as
the keys arrive (``--per-second`` new keys per second of that clock, default 100,000), so the
run takes as long as the hits themselves rather than ``keys / per-second`` seconds, while the
store sees exactly the traffic it would see live: about ``per-second`` keys alive at any
moment, each expiring one second after its hit. No background thread and no explicit sweep:
the backend reclaims expired keys as it writes new ones.

RSS and the number of stored keys are sampled ``--samples`` times; printed (and written with
``--json``): the samples, the RSS once the live set has formed (after the first fifth of the
keys), the highest RSS after that, and the last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from algorithms import FixedWindow
from backends.memory import MemoryBackend
from limits_core import Limiter, ManualClock

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(*, keys: int = 10_000_000, per_second: int = 100_000, samples: int = 40) -> dict[str, Any]:
    """Hit ``keys`` distinct keys once each, ``per_second`` per second of a manual clock."""
    clock = ManualClock(start=1_700_000_000.0)
    backend = MemoryBackend()
    limiter = Limiter(FixedWindow("5/second"), backend, clock=clock)
    batch = max(1, per_second // 1000)  # keys per millisecond of the clock
    every = max(batch, keys // samples)
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    hit = limiter.hit
    for i in range(keys):
        hit(f"client:{i}")
        if not (i + 1) % batch:
            clock.advance(0.001)
        if not (i + 1) % every:
            rows.append(
                {
                    "keys_sent": i + 1,
                    "stored": len(backend),
                    "rss_mb": round(rss_mb(), 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
    elapsed = time.perf_counter() - started
    formed = [r for r in rows if r["keys_sent"] >= keys // 5] or rows
    return {
        "keys": keys,
        "per_second": per_second,
        "seconds": round(elapsed, 1),
        "hits_per_second": round(keys / elapsed),
        "most_stored": max(r["stored"] for r in rows),
        "rss_mb_when_formed": formed[0]["rss_mb"],
        "rss_mb_highest_after": max(r["rss_mb"] for r in formed),
        "rss_mb_last": rows[-1]["rss_mb"],
        "samples": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.churn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keys", type=int, default=10_000_000, help="distinct keys (10M)")
    parser.add_argument("--per-second", type=int, default=100_000, help="new keys per second")
    parser.add_argument("--samples", type=int, default=40, help="RSS samples (default 40)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    figures = run(keys=args.keys, per_second=args.per_second, samples=args.samples)
    text = json.dumps(figures, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
