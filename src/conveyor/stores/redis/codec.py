"""How a job is laid out in its Redis hash, and back.

Numbers are written as Python's ``repr`` (floats) or ``str`` (integers) and stored
exactly as given, so every value round-trips bit for bit; the Lua scripts copy these
strings and never format numbers of their own (except small integer counters).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence

from conveyor.job import DependencyPolicy, Job, JobError, JobState

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


def _opt_float(fields: Mapping[bytes, bytes], name: bytes) -> float | None:
    value = fields.get(name)
    return None if value is None else float(value)


def _opt_str(fields: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode()


def decode_job(flat: Sequence[bytes], errors: Sequence[bytes]) -> Job:
    """A job from its ``HGETALL`` reply (flat list) and its error list."""
    f = dict(zip(flat[::2], flat[1::2], strict=True))
    return job_from_fields(f, errors)


def job_from_fields(f: Mapping[bytes, bytes], errors: Sequence[bytes]) -> Job:
    """A job from its hash fields and error entries."""
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
        timeout=_opt_float(f, b"timeout"),
        lease_token=_opt_str(f, b"lease_token"),
        lease_expires_at=_opt_float(f, b"lease_expires_at"),
        worker_id=_opt_str(f, b"worker_id"),
        depends_on=unpack_strings(f.get(b"depends_on", b"").decode()),
        blocked_by=int(f.get(b"blocked_by", b"0")),
        on_dependency_failure=DependencyPolicy(f[b"on_dependency_failure"].decode()),
        parent_id=_opt_str(f, b"parent_id"),
        tags=unpack_strings(f.get(b"tags", b"").decode()),
        unique_key=_opt_str(f, b"unique_key"),
        idempotency_key=_opt_str(f, b"idempotency_key"),
        task_version=int(f[b"task_version"]),
        result=f.get(b"result"),
        errors=tuple(decode_error(e) for e in errors),
        failure_reason=_opt_str(f, b"failure_reason"),
        rescue_count=int(f.get(b"rescue_count", b"0")),
        cancel_requested=f.get(b"cancel_requested") == b"1",
        created_at=float(f[b"created_at"]),
        started_at=_opt_float(f, b"started_at"),
        finished_at=_opt_float(f, b"finished_at"),
        heartbeat_at=_opt_float(f, b"heartbeat_at"),
    )
