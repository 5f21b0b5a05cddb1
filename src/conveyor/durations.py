"""One parser for durations: ``90``, ``90s``, ``15m``, ``2h``, ``3d``, ``1w``.

Every duration a user types (CLI flags, ``CONVEYOR_*`` variables, settings files)
goes through :func:`parse_duration`, so ``30s`` works wherever seconds are expected
and a bare number stays seconds. Kept free of other Conveyor imports so that
:mod:`conveyor.config` can use it.
"""

from __future__ import annotations

import re

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
FORMS = "a number of seconds, or a number with a unit s, m, h, d or w (e.g. 30, 90s, 15m, 2h)"


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"2h"``, ``"3d"`` or ``"1w"``.

    Raises:
        ValueError: The text is not a duration.
    """
    match = PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use {FORMS}")
    return float(match.group(1)) * UNITS[(match.group(2) or "s").lower()]


def is_duration(text: str) -> bool:
    """True if :func:`parse_duration` accepts ``text``."""
    return PATTERN.match(text) is not None
