"""A job's payload and result as bytes: the argument frame, sealed by the app's codec.

The frame is ``{"a": args, "k": kwargs, "p": piped-from id, "c": condition specs}``
(``p`` and ``c`` only when set). Producers encode it; workers and readers decode it;
both only need a :class:`~conveyor.codec.Codec`, so this sits below the app and the
services that share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.codec import Codec
from conveyor.codec.size import call_data_size
from conveyor.errors import CorruptPayload
from conveyor.job import Job

if TYPE_CHECKING:
    from conveyor.conditions import Condition

__all__ = ["Payload", "decode_payload", "decode_result", "encode_arguments", "encode_result"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded job payload: arguments, plus the job whose result is piped in."""

    args: list[Any]
    kwargs: dict[str, Any]
    piped_from: str | None = None
    conditions: tuple[dict[str, Any], ...] = ()
    """Conditions given to this job at enqueue, as stored (see :mod:`conveyor.conditions`)."""


def encode_arguments(
    codec: Codec,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    piped_from: str | None,
    conditions: Sequence[Condition] = (),
) -> bytes:
    """Serialize arguments to JSON bytes; errors name the path (``args[1].items[3]``).

    The user's data is checked against ``max_payload_bytes`` here, without the
    envelope (see :mod:`conveyor.codec.size`); the whole frame is capped on seal."""
    encoded_args = codec.dumps(list(args), what="args")
    encoded_kwargs = codec.dumps(kwargs, what="kwargs")
    codec.check_size(call_data_size(args, encoded_args, kwargs, encoded_kwargs))
    piped = b',"p":"' + piped_from.encode() + b'"' if piped_from else b""
    if conditions:
        # conditions cost every producer ~15 ms of start-up; most jobs carry none
        from conveyor.conditions import check_conditions

        specs = [c.to_spec() for c in check_conditions(conditions)]
        piped += b',"c":' + codec.dumps(specs, what="conditions")
    return b'{"a":' + encoded_args + b',"k":' + encoded_kwargs + piped + b"}"


def decode_payload(codec: Codec, job: Job) -> Payload:
    """Decode and check a job's payload; any problem is :class:`CorruptPayload`."""
    value = codec.decode(job.payload, aad=job.id.encode())
    if not isinstance(value, dict) or not isinstance(value.get("a"), list):
        raise CorruptPayload(f"job {job.id}: payload is not an argument frame")
    kwargs = value.get("k", {})
    piped = value.get("p")
    conditions = value.get("c", [])
    if (
        not isinstance(kwargs, dict)
        or not (piped is None or isinstance(piped, str))
        or not isinstance(conditions, list)
        or not all(isinstance(c, dict) for c in conditions)
    ):
        raise CorruptPayload(f"job {job.id}: payload is not an argument frame")
    return Payload(value["a"], kwargs, piped, tuple(conditions))


def encode_result(codec: Codec, job_id: str, value: object) -> bytes | None:
    """Encode a handler's return value (None stays None)."""
    if value is None:
        return None
    return codec.encode(value, aad=job_id.encode() + b":result", what="result")


def decode_result(codec: Codec, job: Job) -> Any:
    """Decode a stored result."""
    if job.result is None:
        return None
    return codec.decode(job.result, aad=job.id.encode() + b":result")
