"""Where the file store keeps things, and how records are encoded.

Everything lives under one root directory::

    VERSION                       layout version (an integer)
    lock                          flock'ed by every writer
    journal                       redo log of the commit in progress (absent when idle)
    tmp/                          files being written, renamed into place when complete
    jobs/<id>.json                one job record (payload and result in base64)
    index/<state>/<queue>/<name>  empty marker per job; <name> = "<a>_<b>_<id>"
    deps/<id>.json                ids of the jobs still waiting on job <id>
    keys/unique/<sha256>.json     unique-key hold
    keys/idempotency/<sha256>.json idempotency-key hold
    records/<sha256>/<sha256>     record of (namespace, key), by the digest of each (the
                                  node registry too: namespace "node")

A marker's name carries the numbers its state is ordered by, so a claim sorts one
queue's pending directory without opening a job file: ``a`` is the priority for pending
jobs (0 otherwise) and ``b`` is ``run_at`` (pending, scheduled, retrying),
``lease_expires_at`` (processing), the finish time (terminal) or 0 (blocked).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

from conveyor.errors import ConfigurationError
from conveyor.job import DependencyPolicy, Job, JobError, JobState
from conveyor.stores.corrupt import DECODE_ERRORS, Decoder, Salvage, salvage

S = JobState

LAYOUT_VERSION = 1
VERSION_FILE = "VERSION"
LOCK_FILE = "lock"
JOURNAL_FILE = "journal"
TMP_DIR = "tmp"
JOBS_DIR = "jobs"
INDEX_DIR = "index"
DEPS_DIR = "deps"
UNIQUE_DIR = "keys/unique"
IDEMPOTENCY_DIR = "keys/idempotency"
RECORDS_DIR = "records"
WAKE_BASE = ".conveyor"
"""The wake-up channel's sockets live in ``<root>/.conveyor.wake/``."""

DIRECTORIES = (TMP_DIR, JOBS_DIR, INDEX_DIR, DEPS_DIR, UNIQUE_DIR, IDEMPOTENCY_DIR)

_QUEUE_DIR = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_DSN_FORMS = "file:///absolute/directory"


class PathEscape(ConfigurationError):
    """A path computed inside the store would resolve outside its root directory."""


def parse_dsn(dsn: str) -> str:
    """The absolute directory of ``file:///abs/dir`` (``file://localhost/abs/dir`` too).

    A relative form (``file://relative/dir``, where ``relative`` would be read as a host
    name) is refused rather than guessed: a store shared between processes must not
    depend on each one's working directory. Parameters are refused, not ignored.
    """
    parts = urlsplit(dsn)
    if parts.scheme.lower() != "file":
        raise ConfigurationError(f"not a file DSN: {dsn!r}; expected {_DSN_FORMS}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"file DSN {dsn!r} names a host or a relative path ({parts.netloc!r}); "
            f"expected an absolute directory: {_DSN_FORMS}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"file DSN {dsn!r} takes no parameters; expected {_DSN_FORMS}")
    path = unquote(parts.path)
    if not path.startswith("/") or path.strip("/") == "":
        raise ConfigurationError(
            f"file DSN {dsn!r} needs an absolute directory other than '/'; expected {_DSN_FORMS}"
        )
    if "\x00" in path:
        raise ConfigurationError(f"file DSN {dsn!r} contains a NUL byte")
    return os.path.normpath(path)


def is_queue_dir(queue: str) -> bool:
    """Whether ``queue`` is a valid queue name, safe as one directory component."""
    return len(queue) <= 64 and bool(_QUEUE_DIR.match(queue))


def digest(key: str) -> str:
    """A file name for an arbitrary string key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def job_path(job_id: str) -> str:
    """Relative path of a job record (``job_id`` must already be a checked UUID)."""
    return f"{JOBS_DIR}/{job_id}.json"


def deps_path(job_id: str) -> str:
    """Relative path of the list of jobs waiting on ``job_id``."""
    return f"{DEPS_DIR}/{job_id}.json"


def unique_path(key: str) -> str:
    """Relative path of a unique-key hold."""
    return f"{UNIQUE_DIR}/{digest(key)}.json"


def idempotency_path(key: str) -> str:
    """Relative path of an idempotency-key hold."""
    return f"{IDEMPOTENCY_DIR}/{digest(key)}.json"


def records_dir(namespace: str) -> str:
    """Relative directory of one namespace's records."""
    return f"{RECORDS_DIR}/{digest(namespace)}"


def record_path(namespace: str, key: str) -> str:
    """Relative path of the record of ``(namespace, key)``."""
    return f"{records_dir(namespace)}/{digest(key)}"


def is_record_name(name: str) -> bool:
    """Whether ``name`` is a digest, as a namespace directory or record file is named."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def index_dir(state: JobState, queue: str) -> str:
    """Relative directory of one state's markers in one queue."""
    return f"{INDEX_DIR}/{state.value}/{queue}"


def marker_numbers(job: Job) -> tuple[int, float]:
    """The ``(a, b)`` a job's marker name carries (see the module docstring)."""
    if job.state is S.PENDING:
        return job.priority, job.run_at
    if job.state in (S.SCHEDULED, S.RETRYING):
        return 0, job.run_at
    if job.state is S.PROCESSING:
        return 0, job.lease_expires_at or 0.0
    if job.state is S.BLOCKED:
        return 0, 0.0
    return 0, job.finished_at or job.created_at


def marker_path(job: Job) -> str:
    """Relative path of the job's index marker."""
    return f"{index_dir(job.state, job.queue)}/{marker_name(job)}"


def marker_name(job: Job) -> str:
    """``<a>_<b>_<id>`` with ``a`` and ``b`` as fixed-width hex that sorts as ``(-a, b)``.

    Sorting marker names as plain strings therefore gives a claim's order (priority
    descending, then ``run_at``, then id) without parsing any of them."""
    a, b = marker_numbers(job)
    return f"{_MAX_PRIORITY - a:016x}_{_float_key(b):016x}_{job.id}"


def parse_marker(name: str) -> tuple[int, float, str] | None:
    """``(a, b, id)`` from a marker name, or None for anything else."""
    parts = name.split("_")
    if len(parts) != 3 or len(parts[0]) != 16 or len(parts[1]) != 16:
        return None
    try:
        return _MAX_PRIORITY - int(parts[0], 16), _float_from_key(int(parts[1], 16)), parts[2]
    except ValueError:
        return None


def marker_id(name: str) -> str:
    """The job id at the end of a marker name."""
    return name.rpartition("_")[2]


def priority_fits(priority: int) -> bool:
    """Whether a priority can be encoded in a marker name."""
    return -_MAX_PRIORITY < priority <= _MAX_PRIORITY


_MAX_PRIORITY = (1 << 62) - 1
_SIGN = 1 << 63
_MASK = (1 << 64) - 1


def _float_key(value: float) -> int:
    """An unsigned 64-bit integer that orders like ``value`` (IEEE 754 bit trick)."""
    bits: int = struct.unpack(">Q", struct.pack(">d", value))[0]
    return (~bits & _MASK) if bits & _SIGN else bits | _SIGN


def _float_from_key(key: int) -> float:
    bits = key & ~_SIGN if key & _SIGN else ~key & _MASK
    value: float = struct.unpack(">d", struct.pack(">Q", bits))[0]
    return value


# records ----------------------------------------------------------------------------------
def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes | None:
    return None if text is None else base64.b64decode(str(text))


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))


def encode_job(job: Job) -> bytes:
    """The job as JSON (floats round-trip exactly; bytes in base64)."""
    record: dict[str, Any] = {
        "id": job.id,
        "queue": job.queue,
        "task": job.task,
        "payload": _b64(job.payload),
        "state": job.state.value,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "timeout": job.timeout,
        "lease_token": job.lease_token,
        "lease_expires_at": job.lease_expires_at,
        "worker_id": job.worker_id,
        "depends_on": list(job.depends_on),
        "blocked_by": job.blocked_by,
        "on_dependency_failure": job.on_dependency_failure.value,
        "parent_id": job.parent_id,
        "tags": list(job.tags),
        "unique_key": job.unique_key,
        "idempotency_key": job.idempotency_key,
        "task_version": job.task_version,
        "result": _b64(job.result),
        "errors": [e.to_dict() for e in job.errors],
        "failure_reason": job.failure_reason,
        "rescue_count": job.rescue_count,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "heartbeat_at": job.heartbeat_at,
    }
    return json.dumps(record, separators=(",", ":")).encode()


def decode_job_or_salvage(data: bytes, job_id: str) -> tuple[Job, Salvage | None]:
    """The job in a job file, and None; or, for a damaged file, the salvaged (corrupt)
    job and what was wrong with it (see :mod:`conveyor.stores.corrupt`)."""
    try:
        return decode_job(data), None
    except DECODE_ERRORS as exc:
        salvaged = salvage_job(data, job_id, exc)
        return salvaged.job, salvaged


def salvage_job(data: bytes, job_id: str, cause: BaseException) -> Salvage:
    """Decode a job file that :func:`decode_job` refused, field by field."""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    raw: dict[str, Any] = dict(parsed) if isinstance(parsed, dict) else {}
    raw.setdefault("id", job_id)
    return salvage(raw, _DECODERS, cause)


def _decode_errors(value: Any) -> tuple[JobError, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a JSON array, got {type(value).__name__}")
    return tuple(JobError.from_dict(item) for item in value)


_DECODERS: dict[str, Decoder] = {
    "payload": lambda text: _unb64(text) or b"",
    "result": _unb64,
    "depends_on": tuple,
    "tags": tuple,
    "errors": _decode_errors,
}


def decode_job(data: bytes) -> Job:
    """Inverse of :func:`encode_job`."""
    r: dict[str, Any] = json.loads(data)
    return Job(
        id=r["id"],
        queue=r["queue"],
        task=r["task"],
        payload=_unb64(r["payload"]) or b"",
        state=JobState(r["state"]),
        priority=int(r["priority"]),
        attempt=int(r["attempt"]),
        max_attempts=int(r["max_attempts"]),
        run_at=float(r["run_at"]),
        timeout=_opt_float(r["timeout"]),
        lease_token=r["lease_token"],
        lease_expires_at=_opt_float(r["lease_expires_at"]),
        worker_id=r["worker_id"],
        depends_on=tuple(r["depends_on"]),
        blocked_by=int(r["blocked_by"]),
        on_dependency_failure=DependencyPolicy(r["on_dependency_failure"]),
        parent_id=r["parent_id"],
        tags=tuple(r["tags"]),
        unique_key=r["unique_key"],
        idempotency_key=r["idempotency_key"],
        task_version=int(r["task_version"]),
        result=_unb64(r["result"]),
        errors=tuple(JobError.from_dict(e) for e in r["errors"]),
        failure_reason=r["failure_reason"],
        rescue_count=int(r["rescue_count"]),
        cancel_requested=bool(r["cancel_requested"]),
        created_at=float(r["created_at"]),
        started_at=_opt_float(r["started_at"]),
        finished_at=_opt_float(r["finished_at"]),
        heartbeat_at=_opt_float(r["heartbeat_at"]),
    )
