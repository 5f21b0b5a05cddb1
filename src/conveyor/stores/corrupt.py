"""Stored jobs that cannot be decoded: the one quarantine rule every driver applies.

A row (or job file) can be damaged outside Conveyor: an ``errors`` column that is not
JSON, an unknown state or dependency policy, text where a number belongs. Decoding stays
total so that one such job never stops a claim, a listing or a worker:

- the drivers keep their fast decoder and check its result with :func:`check_job`; only
  when either raises one of :data:`DECODE_ERRORS` do they call :func:`salvage`, which
  decodes field by field, keeps what it can and names every field that failed;
- a claim **quarantines** the job inside its own transaction (state ``failed``, reason
  ``corrupt``, :func:`quarantine_errors` as its error list) and leases the rest of the
  batch as usual;
- a read returns the salvaged :class:`Job` (:attr:`Salvage.job`), marked with reason
  ``corrupt`` and a ``CorruptJob`` error, in place of crashing.

See docs/store-contract.md ("Corrupt rows").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from conveyor.job import DependencyPolicy, FailureReason, Job, JobError, JobState

CORRUPT_ERROR_TYPE: Final = "CorruptJob"
"""``JobError.type`` of the error that records why a job could not be decoded."""
DECODE_ERRORS: Final = (KeyError, ValueError, TypeError, AttributeError, IndexError)
"""What a decoder raises on damaged data (JSON decode errors are ``ValueError``s)."""
_SHOWN: Final = 80
"""Characters of a damaged stored value quoted in the error message."""

_STATES: Final = {state.value: state for state in JobState}
_POLICIES: Final = {policy.value: policy for policy in DependencyPolicy}

Decoder = Callable[[Any], Any]
"""Turns one stored field into its Job value; raises one of :data:`DECODE_ERRORS`."""


def state_or_failed(value: object) -> JobState:
    """The state a stored ``state`` value names; an unknown one reads as ``failed``.

    A job in a state no code knows can never be claimed again: it is shown, counted and
    retried as a dead-lettered (corrupt) job, so it never disappears from every list."""
    return _STATES.get(value, JobState.FAILED) if isinstance(value, str) else JobState.FAILED


def is_known_state(value: object) -> bool:
    """Whether a stored ``state`` value is one of :class:`JobState`."""
    return isinstance(value, str) and value in _STATES


# -- strict field checks -------------------------------------------------------------------
def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TypeError(f"expected a finite number, got {value!r}")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _optional_bytes(value: Any) -> bytes | None:
    return None if value is None else _bytes(value)


def _texts(value: Any) -> tuple[str, ...]:
    items = tuple(value)
    for item in items:
        _text(item)
    return items


def _state(value: Any) -> JobState:
    if not is_known_state(value):
        raise ValueError(f"unknown state {value!r}")
    return _STATES[value]


def _policy(value: Any) -> DependencyPolicy:
    if not isinstance(value, str) or value not in _POLICIES:
        raise ValueError(f"unknown policy {value!r} (expected 'fail' or 'cancel')")
    return _POLICIES[value]


def _errors(value: Any) -> tuple[JobError, ...]:
    items = tuple(value)
    for item in items:
        if not isinstance(item, JobError):
            raise TypeError(f"expected error records, got {type(item).__name__}")
    return items


FIELD_CHECKS: Final[Mapping[str, Decoder]] = {
    "id": _text,
    "queue": _text,
    "task": _text,
    "payload": _bytes,
    "state": _state,
    "priority": _int,
    "attempt": _int,
    "max_attempts": _int,
    "run_at": _number,
    "timeout": _optional_number,
    "lease_token": _optional_text,
    "lease_expires_at": _optional_number,
    "worker_id": _optional_text,
    "depends_on": _texts,
    "blocked_by": _int,
    "on_dependency_failure": _policy,
    "parent_id": _optional_text,
    "tags": _texts,
    "unique_key": _optional_text,
    "idempotency_key": _optional_text,
    "task_version": _int,
    "result": _optional_bytes,
    "errors": _errors,
    "failure_reason": _optional_text,
    "rescue_count": _int,
    "cancel_requested": bool,
    "created_at": _number,
    "started_at": _optional_number,
    "finished_at": _optional_number,
    "heartbeat_at": _optional_number,
}
"""Per Job field: the value's required type (what :func:`check_job` enforces)."""

_NUMBERS: Final = ("priority", "attempt", "max_attempts", "blocked_by", "task_version")


def check_job(job: Job) -> Job:
    """Return ``job`` if the fields the worker computes with have their types; else raise.

    The drivers' fast decoders trust the column types, but SQLite (and a job file) store
    any value anywhere: text in ``priority`` would only fail later, in the worker's sort.
    Costs a few type tests per claimed job."""
    for name in _NUMBERS:
        if type(getattr(job, name)) is not int:
            raise TypeError(f"{name}: expected an integer, got {getattr(job, name)!r}")
    if type(job.run_at) not in (int, float) or not isinstance(job.payload, bytes):
        raise TypeError(f"run_at {job.run_at!r} or the payload has the wrong type")
    return job


# -- salvage -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Salvage:
    """A job decoded field by field: what could be read, and what could not."""

    job: Job
    """Every field that decoded (defaults elsewhere); state ``failed`` if unknown, reason
    ``corrupt``, and a ``CorruptJob`` error naming the damaged fields."""
    problems: tuple[str, ...]
    """One line per damaged field: ``"errors: <decode error> (stored '…')"``."""
    state_known: bool = True
    """False when the stored state is missing or names no :class:`JobState`."""

    @property
    def message(self) -> str:
        """The problems in one line, as recorded in the job's error."""
        return "stored job cannot be decoded: " + "; ".join(self.problems)


def salvage(
    raw: Mapping[str, Any],
    decoders: Mapping[str, Decoder],
    cause: BaseException,
    *,
    now: float = 0.0,
) -> Salvage:
    """Decode ``raw`` (stored values by Job field name) one field at a time.

    ``decoders`` turn a driver's stored form into the Job value (JSON text to a tuple,
    say); every value is then checked against :data:`FIELD_CHECKS`. ``cause`` is what
    the fast decoder raised, reported if no single field can be blamed."""
    defaults = {f.name: f.default for f in dataclasses.fields(Job)}
    values: dict[str, Any] = {"id": "", "queue": "", "task": "", "payload": b""}
    problems: list[str] = []
    for name, check in FIELD_CHECKS.items():
        if name not in raw:
            if defaults[name] is dataclasses.MISSING:
                problems.append(f"{name}: missing")
            continue
        stored = raw[name]
        try:
            decode = decoders.get(name)
            values[name] = check(stored if decode is None else decode(stored))
        except DECODE_ERRORS as exc:
            problems.append(f"{name}: {_describe(exc)} (stored {_shown(stored)})")
            if name == "state":
                values[name] = JobState.FAILED
    if not problems:
        problems.append(f"row: {_describe(cause)}")
    values.setdefault("state", JobState.FAILED)
    attempt = values.get("attempt", 0)
    error = JobError(
        attempt=attempt,
        type=CORRUPT_ERROR_TYPE,
        message="stored job cannot be decoded: " + "; ".join(problems),
        failed_at=now,
    )
    errors: tuple[JobError, ...] = values.get("errors", ())
    last = errors[-1] if errors else None
    if last is None or (last.type, last.message) != (error.type, error.message):
        errors = (*errors, error)  # a job quarantined before already ends with this one
    values["errors"] = errors
    values["failure_reason"] = FailureReason.CORRUPT.value
    job = Job(**values)
    return Salvage(job, tuple(problems), is_known_state(raw.get("state")))


def claimable(salvaged: Salvage) -> bool:
    """Whether a claim that reached this job should quarantine it: it is pending, or in
    a state no code knows (a job in any other state is left where it is)."""
    return salvaged.job.state is JobState.PENDING or not salvaged.state_known


def quarantined(salvaged: Salvage, now: float) -> Job:
    """The job as a claim leaves it: dead-lettered as ``corrupt``, with no lease."""
    errors = salvaged.job.errors
    if errors and errors[-1].type == CORRUPT_ERROR_TYPE:
        errors = (*errors[:-1], dataclasses.replace(errors[-1], failed_at=now))
    return dataclasses.replace(
        salvaged.job,
        errors=errors,
        state=JobState.FAILED,
        lease_token=None,
        lease_expires_at=None,
        cancel_requested=False,
        finished_at=now,
    )


def quarantine_errors(salvaged: Salvage, now: float) -> list[dict[str, object]]:
    """The error list a quarantined job is stored with: the readable errors, then one
    ``CorruptJob`` error (an unreadable list is replaced; its text is quoted there)."""
    return [error.to_dict() for error in quarantined(salvaged, now).errors]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {text}"


def _shown(value: Any) -> str:
    text = repr(bytes(value) if isinstance(value, memoryview) else value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
