"""Strict JSON serialization of job arguments (orjson).

orjson alone is too forgiving for a durable queue: it silently writes NaN as
``null``, accepts naive datetimes and serializes dataclasses that will come back
as plain dicts. Every value is therefore checked by :func:`validate` first, a
small recursive walk over type checks that allocates nothing unless it finds a
problem. Only then is it handed to orjson.

Accepted: ``None``, ``bool``, 64-bit ``int``, finite ``float``, ``str`` without
NUL or lone surrogates, ``list``/``tuple`` (tuples come back as lists), ``dict``
with ``str`` keys, timezone-aware ``datetime`` and ``date`` (ISO-8601 strings),
``uuid.UUID`` and ``decimal.Decimal`` (strings). Subclasses of these are
accepted too and come back as the base JSON type (an ``IntEnum`` comes back as
an ``int``).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import re
import uuid
from typing import Any, Final

import orjson

from conveyor.errors import CorruptPayload, PayloadTooComplex, SerializationError

__all__ = ["MAX_DEPTH_LIMIT", "dumps", "loads", "validate"]

#: orjson refuses to encode more than 254 nested containers.
MAX_DEPTH_LIMIT: Final = 254

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
_BAD_CHAR: Final = re.compile("[\x00\ud800-\udfff]")
_KEY_SHOWN: Final = 40

_INT_RANGE: Final = "integer out of the 64-bit range; pass it as a string"
_NAIVE: Final = "naive datetime; attach a timezone (e.g. datetime.now(timezone.utc))"

_HINTS: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    ((set, frozenset), "convert to a list (e.g. sorted(value))"),
    (
        (bytes, bytearray, memoryview),
        "encode bytes as base64 (base64.b64encode(data).decode('ascii'))",
    ),
    (enum.Enum, "pass member.value (or member.name) instead of the enum member"),
    (datetime.time, "pass time.isoformat() as a string"),
    (datetime.timedelta, "pass timedelta.total_seconds() as a float"),
    (complex, "pass [value.real, value.imag]"),
    (pathlib.PurePath, "pass str(path)"),
)
_GENERIC_HINT: Final = (
    "convert to JSON types (None, bool, int, float, str, list, dict) or a supported "
    "type (timezone-aware datetime, date, UUID, Decimal)"
)


class _Rejected(Exception):
    """Raised inside the walk; collects the path segments while unwinding.

    Building the path only on failure keeps the successful walk allocation-free.
    """

    def __init__(self, reason: str, *, too_deep: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_deep = too_deep
        self.segments: list[int | str] = []


def validate(value: object, *, what: str = "args", max_depth: int = 64) -> None:
    """Check that ``value`` can be carried as JSON without loss or surprise.

    Args:
        value: The value to check.
        what: Root of the error path (``"args"``, ``"kwargs"``, ...).
        max_depth: Deepest nesting of lists/dicts accepted.

    Raises:
        SerializationError: A value of an unsupported type or out of range; the
            message names its path, e.g. ``args[1].items[3]``.
        PayloadTooComplex: Nesting deeper than ``max_depth`` (also catches cycles).
    """
    try:
        _walk(value, 1, max_depth)
    except _Rejected as exc:
        path = _format_path(what, exc.segments)
        if exc.too_deep:
            raise PayloadTooComplex(path, max_depth) from None
        raise SerializationError(path, exc.reason) from None


def dumps(value: object, *, what: str = "args", max_depth: int = 64) -> bytes:
    """Validate ``value`` and serialize it to compact JSON bytes.

    Raises:
        SerializationError: See :func:`validate`.
        PayloadTooComplex: See :func:`validate`.
    """
    validate(value, what=what, max_depth=max_depth)
    try:
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError as exc:  # defensive: the walk should catch everything
        raise SerializationError(what, f"cannot be encoded as JSON: {exc}") from None


def loads(data: bytes) -> object:
    """Parse JSON bytes; any failure is a :class:`CorruptPayload`."""
    try:
        return orjson.loads(data)
    except Exception as exc:
        raise CorruptPayload(f"payload is not valid JSON: {exc}") from None


def _walk(value: Any, depth: int, limit: int) -> None:
    """Check ``value``; ``depth`` is the nesting level it would occupy as a container.

    Dispatches on the exact type first (much cheaper than ``isinstance``) and
    leaves subclasses and the rarer types to :func:`_walk_other`.
    """
    cls = type(value)
    if cls is str:
        if not value.isascii() or "\x00" in value:
            _check_text(value)
    elif cls is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Rejected(_INT_RANGE)
    elif cls is dict:
        if depth > limit:
            raise _Rejected("", too_deep=True)
        _walk_dict(value, depth + 1, limit)
    elif cls is list or cls is tuple:
        if depth > limit:
            raise _Rejected("", too_deep=True)
        _walk_list(value, depth + 1, limit)
    elif cls is float:
        if not math.isfinite(value):
            raise _Rejected(_not_finite(value))
    elif value is not None and cls is not bool:
        _walk_other(value, depth, limit)


def _walk_list(value: Any, depth: int, limit: int) -> None:
    """Check the items of a list or tuple whose children sit at ``depth``."""
    for item in value:
        cls = type(item)
        if cls is str:
            if item.isascii() and "\x00" not in item:
                continue
        elif cls is int:
            if _INT_MIN <= item <= _INT_MAX:
                continue
        elif item is None or cls is bool:
            continue
        try:
            _walk(item, depth, limit)
        except _Rejected as exc:
            exc.segments.append(_index_of(value, item))
            raise


def _index_of(items: list[object] | tuple[object, ...], item: object) -> int:
    """Index of the first occurrence of ``item`` (by identity).

    Only called on failure, which keeps ``enumerate`` off the hot loop. The
    first occurrence is the failing one: an earlier copy of the same object
    would have failed first.
    """
    return next(index for index, candidate in enumerate(items) if candidate is item)


def _walk_dict(value: Any, depth: int, limit: int) -> None:
    """Check the keys and values of a dict whose children sit at ``depth``."""
    for key, item in value.items():
        if type(key) is not str:
            raise _Rejected(_key_type_problem(key))
        if not key.isascii() or "\x00" in key:
            problem = _string_problem(key)
            if problem is not None:
                raise _Rejected(f"dict key {_short_repr(key)}: {problem}")
        cls = type(item)
        if cls is str:
            if item.isascii() and "\x00" not in item:
                continue
        elif cls is int:
            if _INT_MIN <= item <= _INT_MAX:
                continue
        elif item is None or cls is bool:
            continue
        try:
            _walk(item, depth, limit)
        except _Rejected as exc:
            exc.segments.append(key)
            raise


def _walk_other(value: Any, depth: int, limit: int) -> None:
    """Check subclasses of the JSON types and the extra scalars; reject anything else."""
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, int):  # IntEnum, ...
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Rejected(_INT_RANGE)
    elif isinstance(value, float):  # numpy.float64, ...
        if not math.isfinite(value):
            raise _Rejected(_not_finite(value))
    elif isinstance(value, (dict, list, tuple)):
        if depth > limit:
            raise _Rejected("", too_deep=True)
        if isinstance(value, dict):
            _walk_dict(value, depth + 1, limit)
        else:
            _walk_list(value, depth + 1, limit)
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _Rejected(_NAIVE)
    elif not isinstance(value, (datetime.date, uuid.UUID, decimal.Decimal)):
        raise _Rejected(f"{_type_name(value)} is not JSON-serializable; {_hint(value)}")


def _check_text(text: str) -> None:
    """Reject a string holding NUL or a lone surrogate."""
    problem = _string_problem(text)
    if problem is not None:
        raise _Rejected(problem)


def _not_finite(value: float) -> str:
    """Explain why NaN and infinities are refused."""
    return (
        f"float {value!r} is not finite; JSON has no NaN or Infinity "
        "(orjson would silently write null), pass None or a string"
    )


def _default(value: object) -> object:
    """Convert for orjson what it does not encode natively (subclasses, Decimal)."""
    if isinstance(value, datetime.date):  # datetime/date subclasses
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{_type_name(value)} is not JSON-serializable")


def _string_problem(text: str) -> str | None:
    """Say why ``text`` cannot be stored, or None if it can."""
    match = _BAD_CHAR.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return (
            f"string contains a NUL character (\\x00) at index {match.start()}; "
            "PostgreSQL cannot store it in JSON, strip it or encode the data as base64"
        )
    return (
        f"string contains a lone surrogate (U+{ord(match.group()):04X}) at index "
        f"{match.start()}, which is not valid Unicode and cannot be encoded as UTF-8; "
        "it usually comes from decoding bytes with errors='surrogateescape'"
    )


def _key_type_problem(key: object) -> str:
    """Describe a dict key that is not a plain ``str``."""
    if isinstance(key, str):
        return (
            f"dict key {_short_repr(key)} is a {_type_name(key)}, not a plain str; "
            "use str keys (e.g. member.value for an enum)"
        )
    return (
        f"dict key {_short_repr(key)} ({_type_name(key)}) is not a string; "
        "JSON object keys must be strings, convert with str(key)"
    )


def _hint(value: object) -> str:
    """Suggest how to turn an unsupported value into something JSON can carry."""
    for types, hint in _HINTS:
        if isinstance(value, types):
            return hint
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "convert to a dict (dataclasses.asdict(value))"
    if callable(getattr(value, "model_dump", None)):
        return "convert with value.model_dump(mode='json')"
    if callable(value):
        return "pass data, not code: refer to the function by name and look it up in the task"
    return _GENERIC_HINT


def _type_name(value: object) -> str:
    """Qualified type name, without the ``builtins.`` prefix."""
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _short_repr(value: object) -> str:
    """``repr`` cut to a readable length (keys can be arbitrarily long)."""
    text = repr(value)
    if len(text) > _KEY_SHOWN:
        return text[: _KEY_SHOWN - 1] + "…"
    return text


def _format_path(root: str, segments: list[int | str]) -> str:
    """Render ``args[1].items[3]`` / ``kwargs.user["weird key"]`` (segments are reversed)."""
    parts = [root]
    for segment in reversed(segments):
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif segment.isidentifier() and len(segment) <= _KEY_SHOWN:
            parts.append(f".{segment}")
        else:
            shown = segment if len(segment) <= _KEY_SHOWN else segment[: _KEY_SHOWN - 1] + "…"
            parts.append(f"[{json.dumps(shown, ensure_ascii=False)}]")
    return "".join(parts)
