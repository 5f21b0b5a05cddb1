"""The environment ``make test`` built is the one ``uv.lock`` describes, version for version.

A fresh machine once failed because a newer library arrived than the one the code was
tested with; the lock pins every package, and this test fails when the virtualenv drifts
from it (a hand-installed package, an upgrade, a lock edited without a re-sync).
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
DEV_TOOLS = ("pytest", "mypy", "ruff", "hypothesis", "redis", "psycopg", "pytest-timeout")


def canonical(name: str) -> str:
    """PEP 503 normalised name (``Foo_Bar`` → ``foo-bar``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def locked_versions() -> dict[str, str]:
    data = tomllib.loads(LOCK.read_text(encoding="utf-8"))
    return {canonical(p["name"]): p["version"] for p in data["package"] if "version" in p}


def installed_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=[p for p in sys.path if "site-packages" in p]):
        found[canonical(dist.metadata["Name"])] = dist.version
    return found


@pytest.fixture(scope="module")
def project_venv() -> None:
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv (sys.prefix is {sys.prefix})")


def test_lock_exists_and_pins_the_dev_tools() -> None:
    locked = locked_versions()
    missing = [name for name in DEV_TOOLS if name not in locked]
    assert not missing, f"uv.lock does not pin {missing}; run `make lock`"


@pytest.mark.usefixtures("project_venv")
def test_installed_packages_equal_the_lock() -> None:
    locked = locked_versions()
    installed = installed_versions()
    drift = {
        name: (version, locked.get(name, "not in uv.lock"))
        for name, version in installed.items()
        if locked.get(name) != version
    }
    assert not drift, f"installed vs locked: {drift}; run `make install-dev` (or `make lock`)"
    absent = [name for name in DEV_TOOLS if name not in installed]
    assert not absent, f"dev tools from the lock are not installed: {absent}"
