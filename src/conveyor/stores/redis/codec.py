"""How a job is laid out in its Redis hash, and back.

Numbers are written as Python's ``repr`` (floats) or ``str`` (integers) and stored
exactly as given, so every value round-trips bit for bit; the Lua scripts copy these
strings and never format numbers of their own (except small integer counters).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from conveyor.job import DependencyPolicy, FailureReason, Job, JobError, JobState

ERROR_SEP = "\x1f"


def num(value: float) -> str:
    """A float as the exact text Redis and Lua parse back to the same double."""
    return repr(float(value))


def sort_key(value: float) -> str:
    """16 hex digits whose byte order is the numeric order of ``value`` (IEEE trick)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(value)))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def pack_strings(items: Sequence[str]) -> str:
    """Byte-length-prefixed strings (``3:abc2:de``): a list in one hash field."""
    return "".join(f"{len(item.encode())}:{item}" for item in items)


def unpack_strings(text: str) -> tuple[str, ...]:
    """Inverse of :func:`pack_strings` (lengths count bytes, as Lua's ``#`` does)."""
    raw = text.encode()
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        colon = raw.index(b":", pos)
        size = int(raw[pos:colon])
        if size < 0 or colon + 1 + size > len(raw):
            raise ValueError(f"item of {size} bytes runs past the end ({len(raw)} bytes)")
        out.append(raw[colon + 1 : colon + 1 + size].decode())
        pos = colon + 1 + size
    return tuple(out)


def encode_error(error: JobError) -> bytes:
    """A Python-recorded error: ``J`` + JSON."""
    return b"J" + json.dumps(error.to_dict()).encode()


def decode_error(raw: bytes) -> JobError:
    """A stored error entry: ``J``+JSON from Python, or a rescue record from Lua."""
    text = raw.decode()
    if text.startswith("J"):
        return JobError.from_dict(json.loads(text[1:]))
    attempt, worker, started, failed_at = text[1:].split(ERROR_SEP)
    return JobError(
        attempt=int(attempt),
        type="LeaseExpired",
        message=f"lease of worker {worker or None} expired (crashed or stalled)",
        worker_id=worker,
        started_at=float(started) if started else None,
        failed_at=float(failed_at),
    )


class CorruptJobData(ValueError):
    """A job hash or error entry that cannot be decoded; the message names what is wrong."""


CORRUPT_ERROR_TYPE = "CorruptJob"
"""``JobError.type`` of the entry that records why a job was quarantined."""

T = TypeVar("T")


def _field(f: Mapping[bytes, bytes], name: str, parse: Callable[[bytes], T]) -> T:
    """A required field, parsed; a missing or malformed one raises :class:`CorruptJobData`."""
    value = f.get(name.encode())
    if value is None:
        raise CorruptJobData(f"missing field {name}")
    try:
        return parse(value)
    except (ValueError, TypeError) as exc:
        raise CorruptJobData(f"field {name} is malformed ({value[:40]!r}): {exc}") from None


def _optional(f: Mapping[bytes, bytes], name: str, parse: Callable[[bytes], T]) -> T | None:
    """An optional field, parsed (None when absent)."""
    return None if f.get(name.encode()) is None else _field(f, name, parse)


def text(value: object) -> str:
    """A reply or stored value as text (the client does not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(replies: Iterable[object]) -> list[str]:
    """A reply's items (ids, names) as text."""
    return [text(item) for item in replies]


def _strings(value: bytes) -> tuple[str, ...]:
    return unpack_strings(value.decode())


def _state(value: bytes) -> JobState:
    return JobState(value.decode())


def _policy(value: bytes) -> DependencyPolicy:
    return DependencyPolicy(value.decode())


def decode_errors(errors: Sequence[bytes]) -> tuple[JobError, ...]:
    """Every entry of a job's error list; a bad one raises :class:`CorruptJobData`."""
    out = []
    for index, raw in enumerate(errors):
        try:
            out.append(decode_error(raw))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CorruptJobData(
                f"error entry {index} cannot be decoded ({raw[:40]!r}): {exc}"
            ) from None
    return tuple(out)


def fields_of(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """An ``HGETALL`` reply (flat list) as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def job_from_fields(f: Mapping[bytes, bytes], errors: Sequence[bytes]) -> Job:
    """A job from its hash fields and error entries.

    The claim's hot path: a direct decode; only when it fails is the hash decoded again
    field by field, to say which field is wrong.

    Raises:
        CorruptJobData: a field is missing or malformed, or an error entry is garbage.
    """
    try:
        return _fast_job(f, errors)
    except (KeyError, ValueError, TypeError, AttributeError):
        return _checked_job(f, errors)


def _opt(f: Mapping[bytes, bytes], name: bytes, parse: Callable[[bytes], T]) -> T | None:
    value = f.get(name)
    return None if value is None else parse(value)


def _fast_job(f: Mapping[bytes, bytes], errors: Sequence[bytes]) -> Job:
    """A job decoded directly (any problem raises a plain KeyError/ValueError/...)."""
    return Job(
        id=f[b"id"].decode(),
        queue=f[b"queue"].decode(),
        task=f[b"task"].decode(),
        payload=bytes(f[b"payload"]),
        state=JobState(f[b"state"].decode()),
        priority=int(f[b"priority"]),
        attempt=int(f[b"attempt"]),
        max_attempts=int(f[b"max_attempts"]),
        run_at=float(f[b"run_at"]),
        timeout=_opt(f, b"timeout", float),
        lease_token=_opt(f, b"lease_token", text),
        lease_expires_at=_opt(f, b"lease_expires_at", float),
        worker_id=_opt(f, b"worker_id", text),
        depends_on=unpack_strings(f.get(b"depends_on", b"").decode()),
        blocked_by=int(f.get(b"blocked_by", b"0")),
        on_dependency_failure=DependencyPolicy(f[b"on_dependency_failure"].decode()),
        parent_id=_opt(f, b"parent_id", text),
        tags=unpack_strings(f.get(b"tags", b"").decode()),
        unique_key=_opt(f, b"unique_key", text),
        idempotency_key=_opt(f, b"idempotency_key", text),
        task_version=int(f[b"task_version"]),
        result=f.get(b"result"),
        errors=tuple(decode_error(e) for e in errors),
        failure_reason=_opt(f, b"failure_reason", text),
        rescue_count=int(f.get(b"rescue_count", b"0")),
        cancel_requested=f.get(b"cancel_requested") == b"1",
        created_at=float(f[b"created_at"]),
        started_at=_opt(f, b"started_at", float),
        finished_at=_opt(f, b"finished_at", float),
        heartbeat_at=_opt(f, b"heartbeat_at", float),
    )


_REQUIRED: dict[str, Callable[[bytes], object]] = {
    **dict.fromkeys(("id", "queue", "task"), text),
    "payload": bytes,
    "state": _state,
    **dict.fromkeys(("priority", "attempt", "max_attempts", "task_version"), int),
    **dict.fromkeys(("run_at", "created_at"), float),
    "on_dependency_failure": _policy,
}
"""Fields a job hash must hold, with their parsers."""
_OPTIONAL: dict[str, Callable[[bytes], object]] = {
    **dict.fromkeys(
        ("timeout", "lease_expires_at", "started_at", "finished_at", "heartbeat_at"), float
    ),
    **dict.fromkeys(
        ("lease_token", "worker_id", "parent_id", "unique_key", "idempotency_key"), text
    ),
    "failure_reason": text,
    **dict.fromkeys(("depends_on", "tags"), _strings),
    **dict.fromkeys(("blocked_by", "rescue_count"), int),
}
"""Fields a job hash may lack, with their parsers."""
_CHECK_ORDER = tuple(f.name for f in dataclasses.fields(Job))
"""Fields checked in the order of :class:`Job`'s, so the first bad one is named."""


def _checked_job(f: Mapping[bytes, bytes], errors: Sequence[bytes]) -> Job:
    """A job decoded field by field; the first bad one raises :class:`CorruptJobData`."""
    for name in _CHECK_ORDER:
        if name == "errors":
            decode_errors(errors)
        elif name in _REQUIRED:
            _field(f, name, _REQUIRED[name])
        elif name in _OPTIONAL:
            _optional(f, name, _OPTIONAL[name])
    return _fast_job(f, errors)


def _lenient(parse: Callable[[], T], default: T) -> T:
    """``parse()``, or ``default`` when the stored value is missing or malformed."""
    try:
        return parse()
    except CorruptJobData:
        return default


def read_job(job_id: str, f: Mapping[bytes, bytes], errors: Sequence[bytes]) -> Job:
    """A job for read commands: never raises. A hash that cannot be decoded comes back as
    a *corrupt placeholder*: what can be read is kept (the stored state when it is a known
    one, else ``failed``), what cannot gets an empty value (payload ``b""``, numbers 0),
    ``failure_reason`` is ``corrupt`` and the last error entry says what is wrong."""
    try:
        job = job_from_fields(f, errors)
    except CorruptJobData as exc:
        return corrupt_placeholder(job_id, f, errors, str(exc))
    if job.id != job_id:
        return corrupt_placeholder(job_id, f, errors, f"field id does not match its key: {job.id}")
    return job


def corrupt_placeholder(
    job_id: str, f: Mapping[bytes, bytes], errors: Sequence[bytes], why: str
) -> Job:
    """The placeholder :func:`read_job` shows for a hash that cannot be decoded."""
    good = []
    for raw in errors:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            good.append(decode_error(raw))
    finished = _lenient(lambda: _optional(f, "finished_at", float), None)
    attempt = _lenient(lambda: _field(f, "attempt", int), 0)
    good.append(
        JobError(
            attempt=attempt,
            type=CORRUPT_ERROR_TYPE,
            message=f"stored job cannot be decoded: {why}",
            failed_at=finished or 0.0,
        )
    )
    return Job(
        id=job_id,
        queue=_lenient(lambda: _field(f, "queue", text), ""),
        task=_lenient(lambda: _field(f, "task", text), ""),
        payload=_lenient(lambda: _field(f, "payload", bytes), b""),
        state=_lenient(lambda: _field(f, "state", _state), JobState.FAILED),
        priority=_lenient(lambda: _field(f, "priority", int), 0),
        attempt=attempt,
        max_attempts=_lenient(lambda: _field(f, "max_attempts", int), 0),
        run_at=_lenient(lambda: _field(f, "run_at", float), 0.0),
        worker_id=_lenient(lambda: _optional(f, "worker_id", text), None),
        on_dependency_failure=_lenient(
            lambda: _field(f, "on_dependency_failure", _policy), DependencyPolicy.FAIL
        ),
        task_version=_lenient(lambda: _field(f, "task_version", int), 0),
        errors=tuple(good),
        failure_reason=FailureReason.CORRUPT.value,
        created_at=_lenient(lambda: _field(f, "created_at", float), 0.0),
        finished_at=finished,
    )
