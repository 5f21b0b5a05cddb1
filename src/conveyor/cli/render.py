"""Output of the CLI: Rich tables for people, ``-o json`` for programs, one-line errors.

Rich is imported only when a table is drawn. JSON goes to stdout and nothing else
does in that mode (logs and errors go to stderr).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from conveyor.admin.overviews import STATE_ORDER, QueueRow

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

F = TypeVar("F", bound=Callable[..., Any])

STATE_STYLES = {
    "pending": "cyan",
    "scheduled": "blue",
    "processing": "yellow",
    "retrying": "magenta",
    "blocked": "bright_black",
    "completed": "green",
    "failed": "red",
    "cancelled": "bright_black",
}

WIDE = 160
"""Width used when stdout is not a terminal (pipes, tests), so ids are never cut."""


def output_option(fn: F) -> F:
    """The ``-o/--output table|json`` option of read commands."""
    option = click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Rich table for people, or JSON for scripts (stdout holds only the JSON).",
    )
    return option(fn)


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON on stdout."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    click.echo(text.decode())


def print_error(message: str) -> None:
    """One red ``error: …`` line on stderr."""
    click.secho(f"error: {message}", fg="red", err=True)


def console() -> Console:
    """A Rich console on stdout; wide when stdout is not a terminal."""
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=WIDE)
    return out


def short_time(ts: float | None) -> str:
    """``2026-01-01 09:30:00`` (UTC), or ``-``."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """A compact duration: ``42s``, ``3m12s``, ``2h05m``, ``4d03h``; ``-`` for None."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def state_text(state: str) -> str:
    """A state name with its colour markup."""
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def _table(title: str | None = None) -> Table:
    from rich.table import Table

    return Table(title=title, title_justify="left", header_style="bold")


COLUMN_MARKS: dict[str, dict[str, Any]] = {
    ">": {"justify": "right"},
    "=": {"no_wrap": True},
    "~": {"overflow": "fold"},
    "!": {"style": "red"},
}
"""Layout marks a header given to :func:`table_of` may end in."""


def table_of(*headers: str, title: str | None = None) -> Table:
    """A table with these columns; a header may end in layout marks (:data:`COLUMN_MARKS`):
    ``>`` right-aligned (counts), ``=`` never wrapped (ids, times), ``~`` folded (long
    text), ``!`` in red."""
    made = _table(title)
    for header in headers:
        name = header.rstrip("".join(COLUMN_MARKS))
        options: dict[str, Any] = {}
        for mark in header[len(name) :]:
            options.update(COLUMN_MARKS[mark])
        made.add_column(name, **options)
    return made


# --- jobs -------------------------------------------------------------------------------------
def jobs_table(jobs: Sequence[Mapping[str, Any]], *, total: int, offset: int) -> None:
    """Jobs as rows (dicts from :func:`conveyor.admin.job_to_dict`), with a count footer."""
    out = console()
    if not jobs:
        out.print("no jobs match" if total == 0 else f"no jobs at offset {offset} (of {total})")
        return
    table = table_of(
        "id=", "task~", "queue", "state", "prio>", "attempt>", "created (UTC)=", "tags / reason~"
    )
    for job in jobs:
        notes = ", ".join(job["tags"])
        if job.get("failure_reason"):
            notes = f"[red]{job['failure_reason']}[/]" + (f" {notes}" if notes else "")
        table.add_row(
            str(job["id"]),
            str(job["task"]),
            str(job["queue"]),
            state_text(str(job["state"])),
            str(job["priority"]),
            f"{job['attempt']}/{job['max_attempts']}",
            _iso_short(job.get("created_at")),
            notes,
        )
    out.print(table)
    out.print(f"{offset + 1}-{offset + len(jobs)} of {total} jobs")


def _iso_short(value: object) -> str:
    if not isinstance(value, str):
        return "-"
    return value[:19].replace("T", " ")


def job_detail(job: Mapping[str, Any]) -> None:
    """Every field of one job, then its attempt history and errors with tracebacks."""
    from rich.markup import escape

    out = console()
    table = _table(f"job {job['id']}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    skip = {"errors", "attempts", "id", "decisions"}
    for key, value in job.items():
        if key in skip:
            continue
        if key == "state":
            shown = state_text(str(value))
        elif isinstance(value, list | dict):
            shown = escape(orjson.dumps(value, default=str).decode())
        else:
            shown = "-" if value is None else escape(str(value))
        table.add_row(key, shown)
    out.print(table)
    attempts = job.get("attempts") or []
    if attempts:
        history = _table("attempts")
        for column in ("attempt", "worker", "started", "finished", "outcome", "error"):
            history.add_column(column, overflow="fold")
        for attempt in attempts:
            history.add_row(
                str(attempt["attempt"]),
                escape(str(attempt["worker_id"] or "-")),
                _iso_short(attempt["started_at"]),
                _iso_short(attempt["finished_at"]),
                state_text(str(attempt["outcome"])),
                escape(str(attempt["error"] or "")),
            )
        out.print(history)
    decisions = job.get("decisions") or []
    if decisions:
        made = _table("decisions before running")
        for column in ("at", "action", "by", "reason"):
            made.add_column(column, overflow="fold")
        for decision in decisions:
            made.add_row(
                _iso_short(decision["at"]),
                escape(str(decision["action"])),
                escape(str(decision["source"])),
                escape(str(decision["reason"])),
            )
        out.print(made)
    for error in job.get("errors") or []:
        out.print(
            f"[bold red]attempt {error['attempt']}[/] {escape(str(error['type']))}: "
            f"{escape(str(error['message']))}  [dim]({escape(str(error['worker_id']))}, "
            f"{_iso_short(error['failed_at'])})[/]"
        )
        if error.get("traceback"):
            out.print(escape(str(error["traceback"]).rstrip()), style="dim")


def dlq_table(jobs: Sequence[Mapping[str, Any]], *, total: int) -> None:
    """Failed jobs with their reason and last error."""
    out = console()
    if not jobs:
        out.print("the dead-letter queue is empty" if total == 0 else "no jobs at this offset")
        return
    table = table_of(
        "id=", "task~", "queue", "reason!", "attempts>", "failed (UTC)=", "last error~"
    )
    from rich.markup import escape

    for job in jobs:
        errors = job.get("errors") or []
        last = f"{errors[-1]['type']}: {errors[-1]['message']}" if errors else ""
        table.add_row(
            str(job["id"]),
            str(job["task"]),
            str(job["queue"]),
            str(job.get("failure_reason") or "-"),
            f"{job['attempt']}/{job['max_attempts']}",
            _iso_short(job.get("finished_at")),
            escape(last),
        )
    out.print(table)
    out.print(f"{len(jobs)} of {total} failed jobs")


# --- queues and info --------------------------------------------------------------------------
def queues_table(rows: Sequence[QueueRow]) -> None:
    """One row per queue: counts by state and the oldest pending job's age."""
    out = console()
    if not rows:
        out.print("no queues yet (no jobs in the store)")
        return
    table = _table()
    table.add_column("queue", style="bold")
    table.add_column("status")
    for state in STATE_ORDER:
        table.add_column(state.value, justify="right", header_style=STATE_STYLES[state.value])
    table.add_column("total", justify="right")
    table.add_column("oldest pending", justify="right")
    for row in rows:
        table.add_row(
            row.queue,
            "[yellow]paused[/]" if row.paused else "active",
            *(str(row.counts.get(state.value, 0)) for state in STATE_ORDER),
            str(row.total),
            age(row.oldest_pending_age),
        )
    out.print(table)


def info_panel(data: Mapping[str, Any]) -> None:
    """Version, store, codec and registered tasks."""
    from rich.markup import escape

    out = console()
    store = data["store"]
    table = _table("conveyor")
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("version", str(data["version"]))
    table.add_row("store driver", str(store["driver"]))
    table.add_row("store location", escape(str(store["location"])))
    table.add_row("durability", escape(str(store["durability"])))
    schema = store["schema_version"]
    table.add_row("schema version", "-" if schema is None else str(schema))
    for key, value in store["details"].items():
        table.add_row(f"store {key}", escape(str(value)))
    for key, value in data["codec"].items():
        table.add_row(f"codec {key}", escape(str(value)))
    out.print(table)
    tasks = data.get("tasks")
    if tasks is None:
        out.print("[dim]pass --app module:app to list registered tasks[/]")
        return
    if not tasks:
        out.print("no tasks registered")
        return
    task_table = _table("tasks")
    for column in ("name", "queue", "priority", "max attempts", "timeout", "retry"):
        task_table.add_column(column, overflow="fold")
    for task in tasks:
        timeout = task["timeout"]
        task_table.add_row(
            str(task["name"]),
            str(task["queue"]),
            str(task["priority"]),
            str(task["max_attempts"]),
            "-" if timeout is None else f"{timeout:g}s",
            escape(str(task["retry"])),
        )
    out.print(task_table)
