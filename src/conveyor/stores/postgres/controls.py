"""PostgreSQL statements of the job controls: reprioritize, move and id-prefix lookup.

Each control is one ``UPDATE … RETURNING`` over the given ids. Under READ COMMITTED a
row a concurrent claim took meanwhile is re-checked against ``state`` and left alone, so
a control never changes a processing job; the partial claim index follows by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from psycopg import Cursor

from conveyor.job import JobState
from conveyor.stores.controls import MOVABLE_VALUES

SET_PRIORITY: Final = (
    "UPDATE jobs SET priority = %s WHERE id = ANY(%s) AND state = ANY(%s) RETURNING id, state"
)
SET_QUEUE: Final = (
    "UPDATE jobs SET queue = %s WHERE id = ANY(%s) AND state = ANY(%s) RETURNING id, state"
)
FIND_IDS: Final = "SELECT id FROM jobs WHERE id BETWEEN %s AND %s ORDER BY id LIMIT %s"


def change_waiting(
    cur: Cursor[Any], statement: str, value: object, job_ids: Sequence[str]
) -> tuple[list[str], bool]:
    """Run one of the ``SET_*`` statements; return the changed ids in the given order and
    whether any of them is pending (so waiting workers should be woken)."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return [], False
    rows = cur.execute(statement, (value, ids, list(MOVABLE_VALUES))).fetchall()
    states = {str(job_id): str(state) for job_id, state in rows}
    changed = [job_id for job_id in ids if job_id in states]
    return changed, JobState.PENDING.value in states.values()


def find_ids(cur: Cursor[Any], low: str, high: str, limit: int) -> list[str]:
    """Ids between ``low`` and ``high`` (the bounds of a prefix), lowest first."""
    return [str(job_id) for (job_id,) in cur.execute(FIND_IDS, (low, high, limit)).fetchall()]
