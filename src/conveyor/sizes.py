"""Memory sizes given by users: MiB as an int, or a string with a binary unit."""

from __future__ import annotations

import re

from conveyor.errors import InvalidOption

MIB = 1 << 20
_UNITS = {"": MIB, "k": 1 << 10, "m": MIB, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def memory_limit(value: object, option: str = "max_memory") -> int | None:
    """A memory limit in bytes from MiB (``512``) or a size (``"512MiB"``, ``"2GiB"``).

    Units are binary (``MB`` is read as ``MiB``); ``None`` means no limit."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidOption(option, f"must be MiB or a size such as '512MiB', got {value!r}")
    if isinstance(value, int):
        number, unit = float(value), MIB
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        number, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
    else:
        raise InvalidOption(
            option, f"must be MiB (an int) or a size such as '512MiB' or '2GiB', got {value!r}"
        )
    limit = int(number * unit)
    if limit < MIB:
        raise InvalidOption(option, f"must be at least 1 MiB, got {value!r}")
    return limit
