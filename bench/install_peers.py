"""Fallback installer for ``make bench``: when ``pip install -e '.[bench]'`` fails as a
whole, install Conveyor, then each requirement of the bench extra on its own, so one
peer that cannot be installed does not keep the others out (its row says why)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_requirements() -> list[str]:
    """The ``bench`` extra of pyproject.toml."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = data["project"]["optional-dependencies"]
    return extras["bench"]


def pip(*args: str) -> bool:
    """Run pip in this interpreter; True on success."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", *args]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode == 0


def main() -> int:
    if not pip("-e", "."):
        print("install_peers: installing Conveyor itself failed", file=sys.stderr)
        return 1
    failed = [req for req in bench_requirements() if not pip(req)]
    for req in failed:
        print(f"install_peers: could not install {req}; its row will say so", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
