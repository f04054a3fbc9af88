"""``limits-core verify``: passes on memory, fails (exit 1) on an over-admitting store."""

from __future__ import annotations

import pytest

from algorithms import ALGORITHMS
from limits_core.cli import main
from limits_core.cli import verify as verify_command
from tests.support.broken import OverAdmittingBackend
from tests.support.cli import run_cli


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns without a terminal; keep each table row on one line."""
    monkeypatch.setenv("COLUMNS", "160")


def test_memory_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--examples", "5", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "verifying memory with seed 2" in out
    assert out.count("PASS") == len(ALGORITHMS)
    assert "admitted 150 of" in out
    assert f"all {len(ALGORITHMS)} algorithms passed" in out


def test_broken_store_fails_with_evidence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command builds its stores from the URL; hand it the over-admitting store instead.
    monkeypatch.setattr(
        verify_command, "backend_from_url", lambda url, prefix: OverAdmittingBackend()
    )
    monkeypatch.setattr(
        verify_command, "async_backend_from_url", lambda url, prefix: OverAdmittingBackend()
    )
    assert main(["verify", "--examples", "10", "--seed", "1", "--algorithm", "token_bucket"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "over the limit" in out
    assert "model denied" in out
    assert "store allowed" in out
    assert "FAILED: token_bucket (seed 1)" in out


def test_broken_store_fails_as_a_process() -> None:
    code = (
        "import sys\n"
        "from limits_core.cli import main, verify\n"
        "from tests.support.broken import OverAdmittingBackend\n"
        "verify.backend_from_url = verify.async_backend_from_url = "
        "lambda url, prefix: OverAdmittingBackend()\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    done = run_cli("verify", "--examples", "3", "--algorithm", "fixed_window", code=code)
    assert done.returncode == 1
    assert "FAIL" in done.stdout


def test_subprocess_passes_on_memory() -> None:
    done = run_cli("verify", "--examples", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"all {len(ALGORITHMS)} algorithms passed" in done.stdout


def test_bad_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--backend", "ftp://x"]) == 2
    assert "unknown backend URL" in capsys.readouterr().err


def test_examples_must_be_positive() -> None:
    assert main(["verify", "--examples", "0"]) == 2


@pytest.mark.redis
def test_redis(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("backends.redis")
    from tests.support.servers import require

    url = require(request.config.getoption("--redis-url"), 6379, "Redis")
    done = run_cli("verify", "--backend", url, "--examples", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted" in done.stdout


@pytest.mark.postgres
def test_postgres(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("backends.postgres")
    from tests.support.servers import require

    dsn = require(request.config.getoption("--postgres-dsn"), 5432, "PostgreSQL")
    done = run_cli("verify", "--backend", dsn, "--examples", "5")
    assert done.returncode == 0, done.stdout + done.stderr
