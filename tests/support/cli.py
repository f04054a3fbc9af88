"""Running the command line as users do: ``python -m limits_core ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, code: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m limits_core *args`` (or ``python -c code *args``) from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    command = (
        [sys.executable, "-c", code, *args]
        if code
        else [sys.executable, "-m", "limits_core", *args]
    )
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
