"""``conveyor schedule``: preview when a cron or English schedule fires; ``conveyor
scheduler``: run the service that enqueues the app's periodic tasks.

``preview`` prints the next fire times strictly after ``--after`` (default: now). The
zone is the one named in the expression (``… in Europe/Berlin``), else ``--tz``, else
UTC; naming one zone in the text and a different one with ``--tz`` is refused.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli import render
from conveyor.cli.options import DURATION
from conveyor.scheduler.defaults import DEFAULT_LEADER_TTL, DEFAULT_LOOKBACK, DEFAULT_MAX_CATCH_UP
from conveyor.worker.signals import installed

if TYPE_CHECKING:
    from conveyor.cli import CliState
    from conveyor.scheduler.registry import StoredSchedule

log = logging.getLogger("conveyor.scheduler")

MAX_COUNT = 1000


@click.group()
def schedule() -> None:
    """Recurring schedules: preview expressions; add, list, pause, resume and remove the
    schedules kept in the store."""


def _parse_after(value: str | None) -> datetime:
    from conveyor.scheduler.cron import ScheduleError

    if value is None:
        return datetime.now(UTC)
    try:
        after = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(
            "--after", f"{value!r} is not ISO 8601 (e.g. 2026-03-29T00:00:00+01:00)"
        ) from None
    if after.tzinfo is None or after.utcoffset() is None:
        raise ScheduleError(
            "--after", f"{value!r} has no UTC offset; add one, e.g. +00:00, +01:00 or Z"
        )
    return after


@schedule.command()
@click.argument("expression")
@click.option(
    "--tz", "zone", metavar="ZONE", help="IANA time zone. Default: the expression's, else UTC."
)
@click.option(
    "--after",
    metavar="ISO8601",
    help="List fire times strictly after this instant (with a UTC offset). Default: now.",
)
@click.option(
    "-n",
    "--count",
    type=click.IntRange(1, MAX_COUNT),
    default=5,
    help="How many fire times.",
)
@render.output_option
def preview(expression: str, zone: str | None, after: str | None, count: int, output: str) -> None:
    """The next N fire times of EXPRESSION: cron ('30 9 * * 1-5', '@daily') or English
    ('every weekday at 9:30 in Europe/Berlin')."""
    from conveyor.scheduler.cron import ScheduleError, load_zone
    from conveyor.scheduler.natural import parse_schedule

    parsed = parse_schedule(expression)
    if zone is not None:
        load_zone(zone)
    if zone is not None and parsed.tz is not None and zone.strip() != parsed.tz:
        raise ScheduleError(
            "--tz", f"{zone!r} differs from the zone {parsed.tz!r} named in the expression"
        )
    tz = load_zone(parsed.tz or zone or "UTC")
    times = parsed.next_after(_parse_after(after), tz, count)
    if output == "json":
        render.emit_json(
            {
                "cron": parsed.cron,
                "interval_seconds": parsed.interval_seconds,
                "description": parsed.description,
                "next": [moment.isoformat() for moment in times],
            }
        )
        return
    _table(parsed.cron, parsed.interval_seconds, parsed.description, str(tz.key), times)


def _table(
    cron: str | None, interval: int | None, description: str, zone: str, times: list[datetime]
) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = render.console()
    out.print(f"[bold]{escape(description)}[/]")
    out.print(
        f"cron: {escape(cron) if cron else '-'}   interval: "
        f"{f'{interval}s' if interval else '-'}   zone: {escape(zone)}"
    )
    table = Table(header_style="bold")
    table.add_column("#", justify="right")
    table.add_column(f"fire time ({zone})", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    for index, moment in enumerate(times, start=1):
        table.add_row(
            str(index),
            moment.strftime("%Y-%m-%d %H:%M:%S %z (%a)"),
            moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


def _json_arg(text: str | None, field: str, kind: type) -> Any:
    import orjson

    from conveyor.scheduler.cron import ScheduleError

    if text is None:
        return kind()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ScheduleError(
            field, f"is not valid JSON ({exc}); e.g. {field} '[1, \"a\"]'"
        ) from None
    if not isinstance(value, kind):
        raise ScheduleError(field, f"must be a JSON {'list' if kind is list else 'object'}")
    return value


@schedule.command("add")
@click.argument("name")
@click.argument("expression")
@click.option(
    "--task", "task_name", required=True, help="The task to enqueue (its registered name)."
)
@click.option(
    "--tz", "zone", metavar="ZONE", help="IANA time zone. Default: the expression's, else UTC."
)
@click.option(
    "--catch-up",
    type=click.Choice(["skip", "latest", "all"]),
    default="latest",
    help="Fire times missed while no scheduler ran: none, the latest, or all (bounded).",
)
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments, a JSON list.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments, a JSON object.")
@click.option("--replace", is_flag=True, help="Change the schedule if NAME exists.")
@render.output_option
@click.pass_obj
def add_schedule(
    state: CliState,
    name: str,
    expression: str,
    task_name: str,
    zone: str | None,
    catch_up: str,
    args_json: str | None,
    kwargs_json: str | None,
    replace: bool,
    output: str,
) -> None:
    """Store a schedule NAME that enqueues --task on EXPRESSION (cron or English).

    With --app the task and its arguments are checked; without, only the expression."""
    from conveyor.scheduler.manage import store_schedule

    app = state.app(create=True)
    stored = store_schedule(
        app,
        task_name,
        expression,
        name=name,
        tz=zone,
        catch_up=catch_up,
        args=_json_arg(args_json, "--args", list),
        kwargs=_json_arg(kwargs_json, "--kwargs", dict),
        replace_existing=replace,
        require_task=state.has_app,
    )
    if not state.has_app:
        log.warning("task %r not checked: pass --app to check it and its arguments", task_name)
    if output == "json":
        state.emit_json({"schedule": stored.to_dict()})
        return
    render.console().print(f"schedule [bold]{stored.name}[/] stored: {stored.expression}")


@schedule.command("list")
@render.output_option
@click.pass_obj
def list_schedules(state: CliState, output: str) -> None:
    """Every schedule: those in the store, and with --app the code-defined ones."""
    from conveyor.scheduler.registry import ScheduleRegistry
    from conveyor.scheduler.service import stored_form

    app = state.app()
    found = ScheduleRegistry(app.store).list()
    known = {s.name for s in found}
    # code-defined schedules a scheduler has not written to the store yet
    found += [stored_form(e) for name, e in app.schedules.items() if name not in known]
    found.sort(key=lambda s: s.name)
    if output == "json":
        state.emit_json({"schedules": [s.to_dict() for s in found]})
        return
    _schedules_table(found, app.store.now())


def _schedules_table(found: list[StoredSchedule], now: float) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(header_style="bold")
    for column in (
        "name",
        "schedule",
        "task",
        "source",
        "state",
        "last run (UTC)",
        "next run (UTC)",
    ):
        table.add_column(column, no_wrap=column not in ("schedule", "task"))
    for s in found:
        zone = f" ({s.tz})" if s.tz and s.tz != "UTC" else ""
        table.add_row(
            escape(s.name),
            escape(s.expression + zone),
            escape(s.task),
            s.source,
            "[yellow]paused[/]" if s.paused else "[green]active[/]",
            render.short_time(s.last_fire_at),
            "-" if s.paused else render.short_time(s.next_fire_at),
        )
    out = render.console()
    if not found:
        out.print("no schedules stored (add one with `conveyor schedule add`)")
        return
    out.print(table)


def _set_paused(state: CliState, name: str, paused: bool, output: str) -> None:
    from conveyor.scheduler.registry import ScheduleRegistry

    stored = ScheduleRegistry(state.app().store).set_paused(name, paused)
    if output == "json":
        state.emit_json({"schedule": stored.to_dict()})
        return
    render.console().print(f"schedule [bold]{stored.name}[/] {'paused' if paused else 'resumed'}")


@schedule.command("pause")
@click.argument("name")
@render.output_option
@click.pass_obj
def pause_schedule(state: CliState, name: str, output: str) -> None:
    """Stop enqueueing NAME until it is resumed."""
    _set_paused(state, name, True, output)


@schedule.command("resume")
@click.argument("name")
@render.output_option
@click.pass_obj
def resume_schedule(state: CliState, name: str, output: str) -> None:
    """Enqueue NAME again from its next fire time (missed ones are not caught up)."""
    _set_paused(state, name, False, output)


@schedule.command("remove")
@click.argument("name")
@click.pass_obj
def remove_schedule(state: CliState, name: str) -> None:
    """Delete the stored schedule NAME (code-defined schedules are removed in code)."""
    from conveyor.scheduler.registry import ScheduleRegistry

    ScheduleRegistry(state.app().store).remove(name)
    render.console().print(f"schedule [bold]{name}[/] removed")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` while inside; the previous handlers come back after."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    with installed(dict.fromkeys((signal.SIGTERM, signal.SIGINT), handler)):
        yield


@click.command()
@click.option(
    "--lookback",
    type=DURATION,
    default=DEFAULT_LOOKBACK,
    help="How far back missed fire times are still caught up (seconds, or 30m, 1d).",
)
@click.option(
    "--max-catch-up",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CATCH_UP,
    help="Most fire times one schedule enqueues in one pass (catch_up='all').",
)
@click.option(
    "--leader-ttl",
    type=DURATION,
    default=DEFAULT_LEADER_TTL,
    help="How long before a standby scheduler takes over from a leader that stopped "
    "renewing (seconds, or 30s; at least 2 s).",
)
@click.option("--exit-with-parent", is_flag=True, hidden=True)
@click.pass_obj
def scheduler(
    state: CliState, lookback: float, max_catch_up: int, leader_ttl: float, exit_with_parent: bool
) -> None:
    """Run the scheduler: enqueue @app.periodic tasks and stored schedules when due, until
    SIGTERM or Ctrl-C. Run as many as you like: one leads, and each fire time is
    enqueued once."""
    app = state.app(need_tasks=True, service=True)
    from conveyor.scheduler.service import Scheduler

    service = Scheduler(app, lookback=lookback, max_catch_up=max_catch_up, leader_ttl=leader_ttl)
    stop = threading.Event()
    if exit_with_parent:
        _watch_parent(stop)
    with _stop_on_signals(stop):
        service.run(stop)


def _watch_parent(stop: threading.Event) -> None:
    """Stop when the process that started this one is gone (``worker --with-scheduler``
    runs the scheduler in its own session, so it must not outlive the worker)."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                log.warning("the worker that started this scheduler is gone; stopping")
                stop.set()

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()
