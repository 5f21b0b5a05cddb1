"""Logging set-up: stdlib logging, as logfmt lines (``text``) or one JSON object per line.

Structured fields passed with ``extra={...}`` appear as JSON keys (or ``key=value``
pairs in logfmt), so logs can be searched by job id, queue or worker. Every record
is one line (newlines inside values are escaped) written with a single ``write``,
so the lines of prefork children sharing one stderr never interleave mid-line.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import IO, Any

import orjson

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
FORMATS = ("text", "json")
"""``text`` is logfmt; ``json`` one object per line."""


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, ISO 8601, milliseconds: sortable across hosts and processes."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON (values that JSON cannot carry become strings)."""
        data: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def logfmt_value(value: object) -> str:
    """A value as logfmt writes it: bare when it can be, else quoted with escapes."""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    if not escaped.isprintable():  # other control characters: line breaks to some readers
        escaped = "".join(c if c.isprintable() else _code_escape(c) for c in escaped)
    return f'"{escaped}"'


def _code_escape(char: str) -> str:
    """``\\x1b``, ``\\u2028``: a character that is not printable, written as its code."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class TextFormatter(logging.Formatter):
    """logfmt: ``time=… level=… logger=… msg="…"`` then the extra fields as ``k=v``."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line (a traceback becomes an escaped ``exception`` field)."""
        parts = [
            f"time={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={logfmt_value(record.getMessage())}",
        ]
        parts += [f"{k}={logfmt_value(v)}" for k, v in _extras(record).items() if v is not None]
        if record.exc_info:
            parts.append(f"exception={logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class LineHandler(logging.Handler):
    """Writes each record as one line with one ``write`` system call.

    A pipe write of up to ``PIPE_BUF`` (4 KiB) bytes is atomic, and so is an append
    to a file: lines from several processes sharing the stream stay whole."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None  # a stream without a descriptor (tests capture output)

    def emit(self, record: logging.LogRecord) -> None:
        """Format and write ``record``; errors go to :meth:`handleError` as usual."""
        try:
            line = self.format(record) + "\n"
            if self._fd is None:
                self.stream.write(line)
                self.stream.flush()
                return
            self.stream.flush()  # keep order with text written through the stream
            data = line.encode("utf-8", "backslashreplace")
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send ``conveyor.*`` logs to stderr in the chosen format."""
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("conveyor")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def override_logging(level: str | None, fmt: str | None) -> None:
    """Re-configure with a command's own options (a subcommand's ``--log-level`` wins over
    the group's); what is not given keeps its current value."""
    if level is None and fmt is None:
        return
    current_level, current_fmt = current_logging()
    configure_logging(level or current_level, fmt or current_fmt)


def current_logging() -> tuple[str, str]:
    """``(level, format)`` of the ``conveyor`` logger, so child processes can match it."""
    root = logging.getLogger("conveyor")
    level = logging.getLevelName(root.getEffectiveLevel())
    fmt = "json" if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers) else "text"
    return str(level), fmt
