"""The versioned migration files of a SQL driver, read from its ``migrations`` package.

Migrations are the ``NNNN_name.sql`` files of the package, read with
:mod:`importlib.resources` so they ship inside the wheel. How they are applied (the
ledger, locks, transactions) is each driver's (``schema.py``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version, file name and SQL text."""

    version: int
    name: str
    sql: str


@functools.cache
def load(package: str) -> tuple[Migration, ...]:
    """The package's migrations in version order; versions must run 1, 2, 3, … without gaps.

    Cached: the files are part of the installed code and cannot change under a process.
    """
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match and entry.is_file():
            found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        names = ", ".join(m.name for m in found) or "none"
        raise RuntimeError(f"{package}: migrations must be numbered 0001, 0002, …; found {names}")
    return tuple(found)
