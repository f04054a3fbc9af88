"""``limits-core simulate``: the table, the PNG, and a clear error without matplotlib."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from limits_core.cli import main
from tests.support.cli import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns without a terminal; keep each table row on one line."""
    monkeypatch.setenv("COLUMNS", "160")


def test_prints_admitted_and_denied_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--pattern", "boundary", "--seconds", "12"]) == 0
    out = capsys.readouterr().out
    assert "boundary traffic at one key, limit 100 per 10 seconds" in out
    for name in ("fixed_window", "sliding_log", "token_bucket"):
        assert name in out
    assert "fixed_window: admitted 200 of 201; at most 199 within any 10 s (limit 100)" in out
    assert "sliding_log: admitted 101 of 201; at most 100 within any 10 s" in out


def test_plot_writes_a_real_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "sim.png"
    args = ["simulate", "--pattern", "poisson", "--seconds", "20", "--seed", "3", "--plot"]
    assert (
        main([*args, str(out), "--algorithm", "fixed_window", "--algorithm", "token_bucket"]) == 0
    )
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1000
    assert height > 400
    assert len(data) > 10_000  # bars, axes and text, not an empty canvas


def test_plot_without_matplotlib_exits_2(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import matplotlib` raise ImportError, as when absent.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from limits_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "never.png"
    done = run_cli("simulate", "--plot", str(out), code=code)
    assert done.returncode == 2
    assert "pip install 'limits-core[plot]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--rate", "x"], "invalid rate"), (["--seconds", "0"], "seconds must be")],
)
def test_bad_options_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *args]) == 2
    assert message in capsys.readouterr().err


def test_subprocess_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "burst.png"
    done = run_cli("simulate", "--pattern", "burst", "--seconds", "10", "--plot", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote {out}" in done.stdout.replace("\n", "")
