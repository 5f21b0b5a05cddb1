"""Mapping between rows and objects: ``jobs`` rows and :class:`~conveyor.job.Job`,
``nodes`` rows and :class:`~conveyor.stores.base.NodeInfo`.

Job rows are tuples in :data:`JOB_COLUMNS` order. psycopg returns ``text[]`` as lists,
``bytea`` as bytes and ``jsonb`` already parsed, so decoding is cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from conveyor.errors import InvalidOption
from conveyor.job import DependencyPolicy, Job, JobError, JobState
from conveyor.stores.base import NodeInfo, WorkerInfo
from conveyor.stores.corrupt import DECODE_ERRORS, Decoder, Salvage, check_job, salvage
from conveyor.stores.sql_columns import JOB_COLUMNS

COLUMN_LIST: Final = ", ".join(JOB_COLUMNS)
"""Column names, for INSERT."""
SELECT_LIST: Final = ", ".join(f"jobs.{name}" for name in JOB_COLUMNS)
"""Qualified columns, for SELECT and RETURNING (also inside ``UPDATE … FROM``)."""
TOKEN_INDEX: Final = JOB_COLUMNS.index("lease_token")

_STATES: Final = {state.value: state for state in JobState}
_POLICIES: Final = {policy.value: policy for policy in DependencyPolicy}


def state_of(value: str) -> JobState:
    """The state named by a ``state`` column value."""
    return _STATES[value]


def decode_job(r: Sequence[Any], now: float = 0.0) -> Job:
    """A Job from any row: :func:`job_from_row`, or the salvaged (corrupt) job."""
    try:
        return check_job(job_from_row(r))
    except DECODE_ERRORS as exc:
        return salvage_row(r, exc, now).job


def salvage_row(r: Sequence[Any], cause: BaseException, now: float) -> Salvage:
    """Decode a row that :func:`job_from_row` refused, column by column."""
    return salvage(dict(zip(JOB_COLUMNS, r, strict=False)), _DECODERS, cause, now=now)


def _decode_errors(value: Any) -> tuple[JobError, ...]:
    if not value:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"expected a JSON array, got {type(value).__name__}")
    return tuple(JobError.from_dict(item) for item in value)


_DECODERS: Final[dict[str, Decoder]] = {
    "depends_on": lambda ids: tuple(ids) if ids else (),
    "tags": lambda tags: tuple(tags) if tags else (),
    "errors": _decode_errors,
}


def job_from_row(r: Sequence[Any]) -> Job:
    """Build a Job from a row selected with :data:`SELECT_LIST`."""
    return Job(
        id=r[0],
        queue=r[1],
        task=r[2],
        payload=bytes(r[3]),
        state=_STATES[r[4]],
        priority=r[5],
        attempt=r[6],
        max_attempts=r[7],
        run_at=r[8],
        timeout=r[9],
        lease_token=r[10],
        lease_expires_at=r[11],
        worker_id=r[12],
        depends_on=tuple(r[13]) if r[13] else (),
        blocked_by=r[14],
        on_dependency_failure=_POLICIES[r[15]],
        parent_id=r[16],
        tags=tuple(r[17]) if r[17] else (),
        unique_key=r[18],
        idempotency_key=r[19],
        task_version=r[20],
        result=None if r[21] is None else bytes(r[21]),
        errors=tuple(JobError.from_dict(item) for item in r[22]) if r[22] else (),
        failure_reason=r[23],
        rescue_count=r[24],
        cancel_requested=bool(r[25]),
        created_at=r[26],
        started_at=r[27],
        finished_at=r[28],
        heartbeat_at=r[29],
    )


def encode_tags(tags: Sequence[str]) -> list[str] | None:
    """Tags as a ``text[]`` value (None when there are none).

    Commas are refused as by the other drivers, so a job moves between stores unchanged.
    """
    for tag in tags:
        if "," in tag:
            raise InvalidOption("tags", f"{tag!r} contains a comma")
    return list(tags) if tags else None


def encode_error(error: JobError) -> str:
    """One error as JSON text, appended with ``errors || jsonb_build_array(%s::jsonb)``."""
    return orjson.dumps(error.to_dict()).decode()


def node_params(node: NodeInfo, *, heartbeat_at: float) -> tuple[str, float, float, str]:
    """``(id, started_at, heartbeat_at, data)`` of the node's row, stamped ``heartbeat_at``."""
    stamped = dataclasses.replace(node, heartbeat_at=heartbeat_at)
    data = orjson.dumps(dataclasses.asdict(stamped)).decode()
    return node.id, node.started_at, heartbeat_at, data


def node_from_json(data: Mapping[str, Any]) -> NodeInfo:
    """A ``nodes.data`` document back to a NodeInfo (unknown keys ignored)."""
    fields = _known_fields(NodeInfo, data)
    fields["queues"] = tuple(data["queues"])
    fields["capabilities"] = tuple(data.get("capabilities", ()))
    fields["workers"] = tuple(
        WorkerInfo(**_known_fields(WorkerInfo, worker)) for worker in data.get("workers", ())
    )
    return NodeInfo(**fields)


def _known_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}
