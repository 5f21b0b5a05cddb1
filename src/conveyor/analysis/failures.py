"""Failure root causes: one fingerprint for failures that are the same problem.

Two failures are the same problem when they raise the same exception type, with the same
message once the parts that vary per job are taken out (ids, numbers, quoted values,
addresses), from the same place in the user's code (the innermost frame of the traceback
outside the standard library, installed packages and Conveyor itself, by file and
function: line numbers move with every edit). Grouping by that fingerprint turns a DLQ of
ten thousand jobs into the handful of causes behind them.
"""

from __future__ import annotations

import hashlib
import re
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from conveyor.job import Job, JobError

MESSAGE_MAX: Final = 200
"""Characters of the normalised message kept (and hashed)."""

EXAMPLES_MAX: Final = 5
"""Example job ids kept per group."""

_REPLACEMENTS: Final = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<value>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)
"""What varies per job, in the order it is taken out (ids before the numbers in them)."""

_FRAME: Final = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<function>\S+)', re.M)

_NOT_USER_CODE: Final = (
    *{str(Path(sysconfig.get_paths()[name]).resolve()) for name in ("stdlib", "platstdlib")},
    str(Path(__file__).resolve().parents[1]),
)
"""Path prefixes of frames that are not the user's: the standard library and Conveyor."""


def normalize_message(message: str) -> str:
    """``message`` with the parts that vary per job replaced by placeholders."""
    text = message
    for pattern, placeholder in _REPLACEMENTS:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())[:MESSAGE_MAX]


def user_frame(traceback: str) -> str:
    """``file:function`` of the innermost frame of user code in ``traceback`` (the
    innermost frame of any kind when none is the user's; "" without a traceback)."""
    frames = [(m["path"], m["function"]) for m in _FRAME.finditer(traceback)]
    if not frames:
        return ""
    for path, function in reversed(frames):
        if _is_user_code(path):
            return f"{Path(path).name}:{function}"
    path, function = frames[-1]
    return f"{Path(path).name}:{function}"


def _is_user_code(path: str) -> bool:
    if path.startswith("<") or "site-packages" in path or "dist-packages" in path:
        return False
    return not str(Path(path).resolve()).startswith(_NOT_USER_CODE)


def fingerprint(error: JobError) -> str:
    """Twelve hex digits naming the problem behind ``error`` (see the module docstring)."""
    key = "\n".join((error.type, normalize_message(error.message), user_frame(error.traceback)))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(slots=True)
class FailureGroup:
    """Failed jobs that share one fingerprint (their last error's)."""

    fingerprint: str
    type: str
    message: str
    """The normalised message."""
    frame: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    tasks: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)
    """Up to :data:`EXAMPLES_MAX` job ids, most recent failure first."""


def group_failures(jobs: Iterable[Job]) -> list[FailureGroup]:
    """Group jobs by the fingerprint of their last error, largest group first (then the
    most recently seen). Jobs without errors are left out."""
    groups: dict[str, FailureGroup] = {}
    for job in sorted(jobs, key=_failed_at, reverse=True):
        if not job.errors:
            continue
        error = job.errors[-1]
        key = fingerprint(error)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(
                key,
                error.type,
                normalize_message(error.message),
                user_frame(error.traceback),
                first_seen=error.failed_at,
                last_seen=error.failed_at,
            )
        group.count += 1
        group.first_seen = min(group.first_seen, error.failed_at)
        group.last_seen = max(group.last_seen, error.failed_at)
        group.tasks.add(job.task)
        group.queues.add(job.queue)
        if len(group.examples) < EXAMPLES_MAX:
            group.examples.append(job.id)
    return sorted(groups.values(), key=lambda g: (-g.count, -g.last_seen, g.fingerprint))


def _failed_at(job: Job) -> float:
    return job.errors[-1].failed_at if job.errors else 0.0
