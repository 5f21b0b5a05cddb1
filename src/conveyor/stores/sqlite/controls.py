"""SQLite statements of the job controls: reprioritize, move and id-prefix lookup.

Each control is one ``UPDATE … RETURNING`` over the given ids, so it is atomic and the
partial claim index (``jobs_claim`` on queue, priority, run_at, id) follows the new
priority or queue by itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from conveyor.job import JobState
from conveyor.stores.controls import MOVABLE_VALUES
from conveyor.stores.sqlite.rows import encode_ids

_MOVABLE: Final = ", ".join(f"'{value}'" for value in MOVABLE_VALUES)

SET_PRIORITY: Final = (
    "UPDATE jobs SET priority = ? WHERE id IN (SELECT value FROM json_each(?)) "
    f"AND state IN ({_MOVABLE}) RETURNING id, state"
)
SET_QUEUE: Final = (
    "UPDATE jobs SET queue = ? WHERE id IN (SELECT value FROM json_each(?)) "
    f"AND state IN ({_MOVABLE}) RETURNING id, state"
)
FIND_IDS: Final = "SELECT id FROM jobs WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?"


def change_waiting(
    conn: sqlite3.Connection, statement: str, value: object, job_ids: Sequence[str]
) -> tuple[list[str], bool]:
    """Run one of the ``SET_*`` statements; return the changed ids in the given order and
    whether any of them is pending (so waiting workers should be woken)."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return [], False
    rows = conn.execute(statement, (value, encode_ids(ids))).fetchall()
    states = {str(job_id): str(state) for job_id, state in rows}
    changed = [job_id for job_id in ids if job_id in states]
    return changed, JobState.PENDING.value in states.values()


def find_ids(conn: sqlite3.Connection, low: str, high: str, limit: int) -> list[str]:
    """Ids between ``low`` and ``high`` (the bounds of a prefix), lowest first."""
    return [str(job_id) for (job_id,) in conn.execute(FIND_IDS, (low, high, limit)).fetchall()]
