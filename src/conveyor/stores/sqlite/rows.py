"""Mapping between rows and objects: ``jobs`` rows and :class:`~conveyor.job.Job`,
``nodes`` rows and :class:`~conveyor.stores.base.NodeInfo`.

Job rows are plain tuples in :data:`JOB_COLUMNS` order; lists (tags, dependencies, errors)
are stored as text and parsed only when present, to keep the claim path cheap. A node
row keeps the whole NodeInfo as one JSON document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from conveyor.errors import InvalidOption
from conveyor.job import DependencyPolicy, Job, JobError, JobState
from conveyor.stores.corrupt import (
    DECODE_ERRORS,
    Decoder,
    Salvage,
    check_job,
    salvage,
    state_or_failed,
)
from conveyor.stores.sql_columns import JOB_COLUMNS

COLUMN_LIST: Final = ", ".join(JOB_COLUMNS)
"""Column names, for INSERT."""
INLINE_PAYLOAD_MAX: Final = 2048
"""Payloads longer than this are stored in ``job_payloads`` (see migration 0003)."""
SELECT_LIST: Final = ", ".join(
    "coalesce((SELECT p.payload FROM job_payloads p WHERE p.job_id = jobs.id), jobs.payload)"
    if name == "payload"
    else f"jobs.{name}"
    for name in JOB_COLUMNS
)
"""Columns to read a whole Job (the payload from wherever it lives), for SELECT/RETURNING."""

_STATES: Final = {state.value: state for state in JobState}
_POLICIES: Final = {policy.value: policy for policy in DependencyPolicy}


def state_of(value: str) -> JobState:
    """The state named by a ``state`` column value (an unknown one reads as failed, see
    :func:`conveyor.stores.corrupt.state_or_failed`)."""
    return _STATES.get(value) or state_or_failed(value)


def decode_job(r: Sequence[Any], now: float = 0.0) -> Job:
    """A Job from any row: :func:`job_from_row`, or the salvaged (corrupt) job."""
    try:
        return check_job(job_from_row(r))
    except DECODE_ERRORS as exc:
        return salvage_row(r, exc, now).job


def salvage_row(r: Sequence[Any], cause: BaseException, now: float) -> Salvage:
    """Decode a row that :func:`job_from_row` refused, column by column."""
    return salvage(dict(zip(JOB_COLUMNS, r, strict=False)), _DECODERS, cause, now=now)


def _decode_ids(text: str | None) -> tuple[str, ...]:
    return tuple(orjson.loads(text)) if text else ()


_DECODERS: Final[dict[str, Decoder]] = {
    "depends_on": _decode_ids,
    "tags": lambda text: decode_tags(text),
    "errors": lambda text: decode_errors(text),
}


def job_from_row(r: Sequence[Any]) -> Job:
    """Build a Job from a row selected with :data:`COLUMN_LIST`."""
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
        depends_on=tuple(orjson.loads(r[13])) if r[13] else (),
        blocked_by=r[14],
        on_dependency_failure=_POLICIES[r[15]],
        parent_id=r[16],
        tags=decode_tags(r[17]),
        unique_key=r[18],
        idempotency_key=r[19],
        task_version=r[20],
        result=r[21],
        errors=decode_errors(r[22]),
        failure_reason=r[23],
        rescue_count=r[24],
        cancel_requested=bool(r[25]),
        created_at=r[26],
        started_at=r[27],
        finished_at=r[28],
        heartbeat_at=r[29],
    )


def encode_tags(tags: Sequence[str]) -> str | None:
    """``(a, b)`` -> ``",a,b,"`` so ``instr(tags, ',a,')`` matches one whole tag."""
    for tag in tags:
        if "," in tag:
            raise InvalidOption("tags", f"{tag!r} contains a comma")
    return "," + ",".join(tags) + "," if tags else None


def decode_tags(text: str | None) -> tuple[str, ...]:
    """Inverse of :func:`encode_tags`."""
    return tuple(text[1:-1].split(",")) if text else ()


def encode_ids(ids: Sequence[str]) -> str | None:
    """A JSON array of ids, or None for an empty list."""
    return orjson.dumps(list(ids)).decode() if ids else None


def encode_error(error: JobError) -> str:
    """One error as JSON text, for ``json_insert(errors, '$[#]', json(?))``."""
    return orjson.dumps(error.to_dict()).decode()


def decode_errors(text: str | None) -> tuple[JobError, ...]:
    """The ``errors`` column back to JobError records."""
    if not text:
        return ()
    return tuple(JobError.from_dict(item) for item in orjson.loads(text))
