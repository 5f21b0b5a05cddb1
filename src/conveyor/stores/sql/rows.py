"""Mapping between ``jobs`` rows and :class:`~conveyor.job.Job`, for every dialect.

Rows are tuples in :data:`~conveyor.stores.sql_columns.JOB_COLUMNS` order. The columns
that hold lists (dependencies, tags, errors) are decoded by the dialect, since each
database stores them its own way; a row that fails to decode is salvaged field by field
(see :mod:`conveyor.stores.corrupt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from conveyor.job import DependencyPolicy, Job, JobError, JobState
from conveyor.stores.corrupt import DECODE_ERRORS, Salvage, check_job, salvage, state_or_failed
from conveyor.stores.sql.dialect import Dialect
from conveyor.stores.sql_columns import JOB_COLUMNS

TOKEN_INDEX: Final = JOB_COLUMNS.index("lease_token")
"""Where a row holds its lease token."""

_STATES: Final = {state.value: state for state in JobState}
_POLICIES: Final = {policy.value: policy for policy in DependencyPolicy}


def state_of(value: str) -> JobState:
    """The state named by a ``state`` column value (an unknown one reads as failed, see
    :func:`conveyor.stores.corrupt.state_or_failed`)."""
    return _STATES.get(value) or state_or_failed(value)


def decode_job(d: Dialect, r: Sequence[Any], now: float = 0.0) -> Job:
    """A Job from any row: :func:`job_from_row`, or the salvaged (corrupt) job."""
    try:
        return check_job(job_from_row(d, r))
    except DECODE_ERRORS as exc:
        return salvage_row(d, r, exc, now).job


def salvage_row(d: Dialect, r: Sequence[Any], cause: BaseException, now: float) -> Salvage:
    """Decode a row that :func:`job_from_row` refused, column by column."""
    decoders = {"depends_on": d.decode_ids, "tags": d.decode_tags, "errors": d.decode_errors}
    return salvage(dict(zip(JOB_COLUMNS, r, strict=False)), decoders, cause, now=now)


def job_from_row(d: Dialect, r: Sequence[Any]) -> Job:
    """Build a Job from a row selected with the dialect's ``select_list``."""
    return Job(
        id=r[0],
        queue=r[1],
        task=r[2],
        payload=r[3],
        state=_STATES[r[4]],
        priority=r[5],
        attempt=r[6],
        max_attempts=r[7],
        run_at=r[8],
        timeout=r[9],
        lease_token=r[10],
        lease_expires_at=r[11],
        worker_id=r[12],
        depends_on=d.decode_ids(r[13]),
        blocked_by=r[14],
        on_dependency_failure=_POLICIES[r[15]],
        parent_id=r[16],
        tags=d.decode_tags(r[17]),
        unique_key=r[18],
        idempotency_key=r[19],
        task_version=r[20],
        result=r[21],
        errors=d.decode_errors(r[22]),
        failure_reason=r[23],
        rescue_count=r[24],
        cancel_requested=bool(r[25]),
        created_at=r[26],
        started_at=r[27],
        finished_at=r[28],
        heartbeat_at=r[29],
    )


def encode_error(error: JobError) -> str:
    """One error as JSON text, for the dialect's ``append_error``."""
    return orjson.dumps(error.to_dict()).decode()
