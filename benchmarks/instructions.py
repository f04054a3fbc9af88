"""CPU instructions per decision of the in-memory contenders, counted by valgrind.

Run: ``python -m benchmarks.instructions [--calls 20000] [--workload hot-allow ...]``
(needs ``valgrind``: Debian's package of that name).

Decisions per second swing with whatever else the machine does; the instructions a decision
executes do not. For each workload and contender this runs a child process under
``valgrind --tool=callgrind`` twice, once priming the workload and stopping, once priming it
and then making ``--calls`` decisions, and reports the difference divided by the calls: the
instructions of one decision, the interpreter's included, the startup and the priming left
out. Each figure is then divided into the peers' (above 1, limits-core executes fewer).
The count says nothing of cache misses, so it complements the timed suite
(``benchmarks/test_memory_bench.py``), which measures them too.

(``limits``' MemoryStorage expires keys from a timer thread; under valgrind, which slows the
process about fifty times, that thread fires fewer times per decision than it would at full
speed, so its share is undercounted.)
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

from benchmarks.workloads import MEMORY_CONTENDERS, WORKLOADS, Workload, memory_contender

_COLLECTED = re.compile(rb"Collected : (\d+)")
#: The peer whose semantics each of ours shares, for the ratio column.
_PEER_OF = {"limits-core SlidingLog": "limits MovingWindow"}
_DEFAULT_PEER = "limits FixedWindow"


def _child(name: str, workload_id: str, calls: int) -> None:
    """What runs under valgrind: prime the workload, then ``calls`` decisions."""
    workload = next(w for w in WORKLOADS if w.id == workload_id)
    hit, close = memory_contender(name, workload)
    workload.prime(hit)
    keys = workload.key_cycle()
    for key in itertools.islice(keys, calls):
        hit(key)
    close()


def _instructions(name: str, workload: Workload, calls: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        name,
        workload.id,
        str(calls),
    ]
    result = subprocess.run(command, capture_output=True, check=True)
    match = _COLLECTED.search(result.stderr)
    if match is None:
        raise RuntimeError(f"valgrind printed no instruction count for {name} {workload.id}")
    return int(match.group(1))


def per_decision(name: str, workload: Workload, calls: int) -> float:
    """Instructions of one decision of ``name`` on ``workload``."""
    return (_instructions(name, workload, calls) - _instructions(name, workload, 0)) / calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="decisions counted per run")
    parser.add_argument(
        "--workload", action="append", choices=[w.id for w in WORKLOADS], help="default: all"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, workload_id, calls = args.child
        _child(name, workload_id, int(calls))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    chosen = [w for w in WORKLOADS if not args.workload or w.id in args.workload]
    for workload in chosen:
        counts = {name: per_decision(name, workload, args.calls) for name in MEMORY_CONTENDERS}
        print(f"\n### memory {workload.id}: instructions per decision ({args.calls:,} decisions)\n")
        print("| contender | instructions | peer ÷ ours |")
        print("|---|---:|---:|")
        for name, count in counts.items():
            peer = _PEER_OF.get(name, _DEFAULT_PEER)
            ratio = f"{counts[peer] / count:.2f} ({peer})" if name.startswith("limits-core") else ""
            print(f"| {name} | {count:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
