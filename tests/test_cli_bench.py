"""``limits-core bench``: in-process and as a subprocess, on the in-memory backend."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from algorithms import ALGORITHMS
from backends.memory import MemoryBackend
from limits_core import BackendUnavailable
from limits_core.benchmarking import Contender, Workload, combine, measure, measure_async
from limits_core.cli import main
from limits_core.rate import Rate
from tests.support.cli import run_cli

QUICK = ["bench", "--duration", "0.06", "--rounds", "2", "--keys", "100"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns without a terminal; keep each table row on one line."""
    monkeypatch.setenv("COLUMNS", "160")


def schema() -> dict[str, Any]:
    text = resources.files("limits_core").joinpath("bench-result.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _load_valid(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(document, schema())
    return document


def test_json_output_matches_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main([*QUICK, "--json", str(out)]) == 0
    document = _load_valid(out)
    names = [r["name"] for r in document["results"]]
    assert names == [f"limits-core {kind.__name__}" for kind in ALGORITHMS.values()]
    assert document["workload"] == {
        "path": "allow",
        "rate": "1000000/second",
        "keys": 100,
        "duration": 0.06,
        "rounds": 2,
        "concurrency": 1,
    }
    for row in document["results"]:
        assert row["ours"]
        assert row["mode"] == "sync"
        assert row["unexpected"] == 0
        assert len(row["rounds"]) == 2
    printed = capsys.readouterr().out
    assert "decisions/s" in printed
    assert "limits-core SlidingLog" in printed


def test_the_schema_rejects_what_it_should(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main([*QUICK, "--algorithm", "token_bucket", "--json", str(out)]) == 0
    document = _load_valid(out)
    broken = json.loads(json.dumps(document))
    broken["results"][0]["decisions_per_second"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
    del document["workload"]["path"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema())


def test_peers_on_memory_with_ratios(tmp_path: Path) -> None:
    pytest.importorskip("limits")
    out = tmp_path / "bench.json"
    args = [*QUICK, "--algorithm", "fixed_window", "--peers", "--json", str(out)]
    assert main(args) == 0
    rows = {r["name"]: r for r in _load_valid(out)["results"]}
    peer = rows["limits FixedWindow"]
    assert not peer["ours"]
    assert peer["algorithm"] == "fixed_window"
    ours = rows["limits-core FixedWindow"]["decisions_per_second"]
    assert peer["ratio"] == pytest.approx(ours / peer["decisions_per_second"], rel=1e-3)
    assert peer["ratio_against"] == "limits-core FixedWindow"
    assert "limits MovingWindow" not in rows  # compared with sliding_log, not selected


def test_deny_path_and_asyncio_tasks(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [*QUICK, "--path", "deny", "--concurrency", "8", "--keys", "1", "--json", str(out)]
    assert main(args) == 0
    document = _load_valid(out)
    assert document["workload"]["rate"] == "1/hour"
    for row in document["results"]:
        assert row["mode"] == "async x8"
        assert row["unexpected"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "mysql://x"], "unknown backend URL"),
        (["--rate", "lots"], "invalid rate"),
        (["--keys", "0"], "keys must be"),
        (["--duration", "0"], "--duration"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


def test_unknown_algorithm_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--algorithm", "leaky"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_cli(*QUICK, "--algorithm", "fixed_window", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "limits-core FixedWindow" in done.stdout
    assert _load_valid(out)["results"][0]["decisions"] > 0
    bad = run_cli("bench", "--backend", "mysql://root:hunter2@db/x")
    assert bad.returncode == 2
    assert "unknown backend URL 'mysql://root:***@db/x'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_failing_store_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from limits_core import contenders

    class Down(MemoryBackend):
        def decide(self, *args: Any) -> Any:
            raise BackendUnavailable("the store is down")

    monkeypatch.setattr(contenders, "backend_from_url", lambda url, prefix=None: Down())
    assert main([*QUICK, "--algorithm", "sliding_log"]) == 1


def test_measure_counts_and_checks_the_path() -> None:
    calls: list[str] = []

    def hit(key: str) -> bool:
        calls.append(key)
        return False  # a store that denies everything

    workload = Workload(3, "allow", Rate.parse("10/second"), key_prefix="t:")
    m = measure(Contender("deny-all", hit=hit), workload, 0.02)
    assert m.decisions + 200 == len(calls)  # the warm-up is not counted
    assert set(calls) == {"t:0", "t:1", "t:2"}
    assert m.unexpected == m.samples > 0  # every sampled decision contradicted the path
    assert m.per_second > 0
    assert 0 < m.p50_us <= m.p99_us


async def test_measure_async_primes_the_deny_path() -> None:
    spent: dict[str, int] = {}

    async def ahit(key: str) -> bool:
        spent[key] = spent.get(key, 0) + 1
        return spent[key] <= 2  # a limit of 2 per key

    workload = Workload(5, "deny", Rate.parse("2/hour"))
    m = await measure_async(Contender("c", ahit=ahit), workload, 0.02, tasks=3)
    assert m.unexpected == 0
    assert m.mode == "async x3"
    assert sum(spent.values()) == m.decisions + 5 * 3  # priming: 2 admitted + 1 denied per key


def test_combine_takes_the_median_round() -> None:
    def hit(key: str) -> bool:
        return True

    workload = Workload(1, "allow", Rate.parse("10/second"))
    rounds = [measure(Contender("c", hit=hit), workload, 0.01) for _ in range(3)]
    combined = combine(rounds)
    assert combined.per_second == sorted(r.per_second for r in rounds)[1]
    assert combined.decisions == sum(r.decisions for r in rounds)
    assert combined.rounds == tuple(r.per_second for r in rounds)


def test_the_command_line_imports_no_driver_or_peer() -> None:
    code = (
        "import sys\n"
        "from limits_core.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('redis', 'asyncpg', 'psycopg', 'matplotlib', 'limits', 'pyrate_limiter',\n"
        "         'throttled')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = run_cli(code=code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.redis
def test_redis_with_peers_leaves_no_keys(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pytest.importorskip("backends.redis")
    redis = pytest.importorskip("redis")
    from tests.support.servers import require

    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    out = tmp_path / "bench.json"
    args = ["bench", "--backend", url, "--duration", "0.1", "--rounds", "1", "--keys", "20"]
    with redis.Redis.from_url(url) as client:
        # Other runs may share this Redis: only keys that appear during this run count.
        before = set(client.scan_iter(match="*lcb-*", count=1000))
    assert main([*args, "--path", "deny", "--peers", "--json", str(out)]) == 0
    document = _load_valid(out)
    names = {r["name"] for r in document["results"]}
    assert {"limits-core FixedWindow", "limits-core SlidingLog", "limits-core TokenBucket"} <= names
    assert all(r["unexpected"] == 0 for r in document["results"])
    with redis.Redis.from_url(url) as client:
        assert set(client.scan_iter(match="*lcb-*", count=1000)) - before == set()
