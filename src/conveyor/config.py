"""Settings: frozen dataclasses, filled from flags > ``CONVEYOR_*`` env > code > file > defaults.

One precedence rule everywhere (App(), the CLI with and without ``--app``, worker
children, the scheduler): a flag beats the environment, the environment beats what the
code passes (``App("sqlite:///jobs.db")``), the code beats the settings file, and the
file beats the defaults. The environment sits above the code so that operators can
point a deployed app at another store (``CONVEYOR_STORE``) without editing it, and
every process of a deployment that shares the environment uses the same store.

The file is ``conveyor.toml`` (top level) or the ``[tool.conveyor]`` table of
``pyproject.toml`` in the working directory. Each field ``foo_bar`` is read from
the environment as ``CONVEYOR_FOO_BAR`` and from the file as ``foo_bar``; a file key
that no settings class (nor the CLI, e.g. ``app``) knows is refused. Every ``float``
setting is a duration in seconds and also accepts ``30s``/``5m``/``2h``. Values are
validated once, up front, with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conveyor.durations import FORMS as DURATION_FORMS
from conveyor.durations import parse_duration
from conveyor.errors import ConfigurationError
from conveyor.maintenance.retention import parse_retention
from conveyor.queues import parse_queues

DEFAULT_STORE = "sqlite:///conveyor.db"
ENV_PREFIX = "CONVEYOR_"

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSettings:
    """Settings of an :class:`~conveyor.App` (store, codec, logging)."""

    store: str = DEFAULT_STORE
    encryption_keys: str = ""
    """``id:base64key,…``; the first key encrypts, all of them decrypt."""
    max_payload_bytes: int = 1 << 20
    """Most bytes of data in a job's arguments (or a result), 1 MiB by default: each
    argument's JSON, a string argument without its quotes; not the keyword names or
    the envelope Conveyor adds. Checked at enqueue (``PayloadTooLarge``)."""
    max_decoded_bytes: int = 0
    """Most bytes of a whole serialized payload, envelope included: enqueue refuses
    more, and a worker refuses a stored frame that inflates past it (a zip bomb) as
    ``CorruptPayload``. 0: four times ``max_payload_bytes``."""
    compress_above: int = 1024
    log_level: str = "INFO"
    log_format: str = "text"
    clock_offset_warning: float = 1.0
    """Seconds this host's clock may be off a PostgreSQL or Redis server's before a
    warning is logged (leases follow the server's clock either way)."""

    def __post_init__(self) -> None:
        _positive("max_payload_bytes", self.max_payload_bytes)
        _positive("clock_offset_warning", self.clock_offset_warning)
        if self.max_decoded_bytes and self.max_decoded_bytes < self.max_payload_bytes:
            raise ConfigurationError(
                f"max_decoded_bytes ({self.max_decoded_bytes}) must be 0 (automatic) or at "
                f"least max_payload_bytes ({self.max_payload_bytes})"
            )
        if self.compress_above < 0:
            raise ConfigurationError("compress_above: must not be negative")
        if self.log_format not in ("text", "json"):
            raise ConfigurationError(
                f"log_format: must be 'text' or 'json', got {self.log_format!r}"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigurationError(f"log_level: unknown level {self.log_level!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """Settings of a worker; the invariants between them are checked here."""

    queues: str = "default"
    """``a,b,c`` (strict order) or ``high=6,default=3,low=1`` (weighted)."""
    prefetch: int = 1
    """Jobs claimed per round trip; more than 1 only helps very short jobs."""
    ack_flush_interval: float = 0.005
    """Longest a finished job's completion waits to be batched with others (seconds; 0:
    each at once). A crash re-runs only jobs finished within this window."""
    lease_seconds: float = 30.0
    heartbeat_interval: float = 5.0
    rescue_interval: float = 5.0
    poll_interval: float = 1.0
    """Longest sleep without a wake-up before looking again (a safety net)."""
    max_rescues: int = 3
    rescue_retry_delay: float = 1.0
    burst: bool = False
    grace: float = 30.0
    worker_id: str = ""
    """Empty: ``host:pid``."""
    concurrency: int = 1
    """Child processes the supervisor keeps (``-c``); ignored with ``autoscale``."""
    autoscale: str = ""
    """``MIN,MAX``: grow and shrink the child count from queue depth and wait time."""
    max_tasks_per_child: int = 0
    """Replace a child after this many jobs (0: never)."""
    max_memory_per_child: int = 0
    """Replace a child whose RSS passes this many MiB, during a job or after it, right after
    that job (0: never)."""
    max_memory_per_job: int = 0
    """Stop a job whose process passes this many MiB of RSS while it runs (0: no limit);
    a task's ``max_memory`` option takes precedence."""
    max_child_lifetime: float = 0.0
    """Replace a child after this many seconds (0: never)."""
    hard_timeout_grace: float = 5.0
    """Seconds past a job's soft timeout before the supervisor kills its child."""
    liveness_timeout: float = 0.0
    """Kill a child silent for this long (0: three heartbeat intervals, at least 5 s)."""
    capabilities: str = ""
    """Comma-separated tags this node offers (recorded in the node registry)."""
    retention_completed: str = "1d"
    """How long completed jobs (and their results) are kept: ``30m``, ``12h``, ``1d``… or
    ``forever``."""
    retention_failed: str = "14d"
    """How long failed (DLQ) jobs are kept, or ``forever``."""
    retention_cancelled: str = "1d"
    """How long cancelled jobs are kept, or ``forever``."""
    prune_interval: float = 60.0
    """Seconds between the pruner's passes (one leader prunes for every worker of the store)."""
    condition_error_limit: int = 5
    """A job whose conditions raise this many times in a row fails (``condition_error``)."""

    def __post_init__(self) -> None:
        for name in ("retention_completed", "retention_failed", "retention_cancelled"):
            parse_retention(getattr(self, name), name)
        _positive("prune_interval", self.prune_interval)

        parse_queues(self.queues)
        _positive("prefetch", self.prefetch)
        _positive("max_rescues", self.max_rescues)
        _positive("condition_error_limit", self.condition_error_limit)
        for name in ("lease_seconds", "heartbeat_interval", "rescue_interval", "poll_interval"):
            _positive(name, getattr(self, name))
        for name in (
            "max_tasks_per_child",
            "max_memory_per_child",
            "max_memory_per_job",
            "max_child_lifetime",
            "hard_timeout_grace",
            "liveness_timeout",
        ):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name}: must not be negative")
        _positive("concurrency", self.concurrency)
        if not math.isfinite(self.ack_flush_interval) or self.ack_flush_interval < 0:
            raise ConfigurationError(
                f"ack_flush_interval: must be 0 or more seconds (e.g. 0.005), "
                f"got {self.ack_flush_interval!r}"
            )
        self.autoscale_bounds()
        if self.grace < 0 or self.rescue_retry_delay < 0:
            raise ConfigurationError("grace and rescue_retry_delay must not be negative")
        if self.heartbeat_interval > self.lease_seconds / 4:
            raise ConfigurationError(
                f"heartbeat_interval ({self.heartbeat_interval}s) must be at most a quarter of "
                f"lease_seconds ({self.lease_seconds}s), so a lease survives a missed heartbeat"
            )
        if self.rescue_interval > self.lease_seconds:
            raise ConfigurationError(
                f"rescue_interval ({self.rescue_interval}s) must not exceed "
                f"lease_seconds ({self.lease_seconds}s)"
            )

    def autoscale_bounds(self) -> tuple[int, int] | None:
        """``(min, max)`` from ``autoscale``, or None when it is off."""
        if not self.autoscale:
            return None
        parts = self.autoscale.split(",")
        try:
            low, high = (int(p) for p in parts)
        except ValueError:
            raise ConfigurationError(
                f"autoscale: expected MIN,MAX (e.g. 1,8), got {self.autoscale!r}"
            ) from None
        if not 0 <= low <= high or high < 1:
            raise ConfigurationError(
                f"autoscale: need 0 <= MIN <= MAX and MAX >= 1, got {self.autoscale!r}"
            )
        return low, high

    @property
    def effective_liveness_timeout(self) -> float:
        """How long a child may stay silent before it counts as hung."""
        return self.liveness_timeout or max(3 * self.heartbeat_interval, 5.0)


def _positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}: must be greater than 0, got {value!r}")


CLI_FILE_KEYS: dict[str, str] = {"app": "your App, as --app takes it (module:attribute)"}
"""File keys read by the CLI itself rather than by a settings class."""


def settings_classes() -> tuple[type, ...]:
    """Every settings class whose fields may appear in the settings file."""
    return (AppSettings, WorkerSettings)


def known_file_keys() -> list[str]:
    """The keys a settings file may hold: every settings field, and the CLI's own keys."""
    keys = set(CLI_FILE_KEYS)
    for cls in settings_classes():
        keys.update(f.name for f in dataclasses.fields(cls))
    return sorted(keys)


def check_file_keys(path: Path, data: Mapping[str, Any]) -> None:
    """Refuse keys no setting reads, so a typo is not silently ignored.

    Raises:
        ConfigurationError: naming the unknown keys and listing the known ones.
    """
    known = set(known_file_keys())
    unknown = sorted(key for key in data if key not in known)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; known settings: {', '.join(sorted(known))}"
        )


def read_file_settings(cwd: Path | None = None) -> dict[str, Any]:
    """Settings from ``conveyor.toml`` or ``pyproject.toml`` ``[tool.conveyor]``.

    Raises:
        ConfigurationError: The file cannot be read or holds an unknown key.
    """
    base = cwd or Path.cwd()
    for path, table in (
        (base / "conveyor.toml", ()),
        (base / "pyproject.toml", ("tool", "conveyor")),
    ):
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read settings: {exc}") from exc
        for key in table:
            data = data.get(key, {}) if isinstance(data, dict) else {}
        if data:
            if not isinstance(data, dict):
                raise ConfigurationError(f"{path}: [tool.conveyor] must be a table")
            check_file_keys(path, data)
            return dict(data)
    return {}


def build(
    cls: type[T],
    *,
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    file: Mapping[str, Any] | None = None,
    code: Mapping[str, object] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> T:
    """Make ``cls`` from the layers, highest first: flags, env, code, file, defaults.

    ``code`` is what the program passes (``App("sqlite:///jobs.db")``); ``defaults``
    only replace the dataclass defaults. A flag or code value of ``None`` means "not
    given". Keys of other settings classes in ``file`` are skipped here (the file is
    shared; :func:`read_file_settings` refuses unknown keys); bad values raise
    :class:`ConfigurationError` naming the setting and its source.
    """
    environ = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(code or {}) - names)
    if unknown:
        raise ConfigurationError(
            f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.name
        flag = (flags or {}).get(name)
        env_name = ENV_PREFIX + name.upper()
        in_code = (code or {}).get(name)
        if flag is not None:
            values[name] = _coerce(name, hints[name], flag, "flag")
        elif env_name in environ:
            values[name] = _coerce(name, hints[name], environ[env_name], env_name)
        elif in_code is not None:
            values[name] = _coerce(name, hints[name], in_code, "code")
        elif file and name in file:
            values[name] = _coerce(name, hints[name], file[name], "settings file")
        elif defaults and name in defaults:
            values[name] = defaults[name]
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigurationError(str(exc)) from exc


def _coerce(name: str, hint: object, value: object, source: str) -> object:
    target = _base_type(hint)
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if target is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(str(value))
        if target is float:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, int | float):
                return float(value)
            return parse_duration(str(value))
        return str(value)
    except ValueError as exc:
        kind = DURATION_FORMS if target is float else getattr(target, "__name__", str(target))
        raise ConfigurationError(f"{name} (from {source}): expected {kind}, got {value!r}") from exc


def _base_type(hint: object) -> object:
    if isinstance(hint, types.UnionType):
        args = [a for a in hint.__args__ if a is not type(None)]
        return args[0] if args else str
    return hint
