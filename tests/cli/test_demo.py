"""``examples/demo.py`` runs end to end: a real worker process drains the demo's jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import subprocess_env

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_ends_as_expected(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--db", str(db), "--jobs", "40"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "jobs by queue and state" in out
    assert "completed" in out
    assert "failed" in out
    assert "dead-letter queue" in out
    assert out.count("exhausted") == 3
    assert "chain result: 'saved: https://example.com/conveyor (4 words)'" in out
    assert "all jobs ended as expected" in out
    assert db.exists()
