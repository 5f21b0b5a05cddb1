"""``conveyor schedule``: preview when a cron or English schedule fires; ``conveyor
scheduler``: run the service that enqueues the app's periodic tasks.

``preview`` prints the next fire times strictly after ``--after`` (default: now). The
zone is the one named in the expression (``… in Europe/Berlin``), else ``--tz``, else
UTC; naming one zone in the text and a different one with ``--tz`` is refused.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli import render
from conveyor.scheduler import ScheduleError, load_zone, parse_schedule
from conveyor.scheduler.service import DEFAULT_LOOKBACK, DEFAULT_MAX_CATCH_UP, Scheduler

if TYPE_CHECKING:
    from conveyor.cli import CliState

log = logging.getLogger("conveyor.scheduler")

MAX_COUNT = 1000


@click.group()
def schedule() -> None:
    """Recurring schedules: preview cron and English expressions."""


def _parse_after(value: str | None) -> datetime:
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
    "-n", "count", type=click.IntRange(1, MAX_COUNT), default=5, help="How many fire times."
)
@render.output_option
def preview(expression: str, zone: str | None, after: str | None, count: int, output: str) -> None:
    """The next N fire times of EXPRESSION: cron ('30 9 * * 1-5', '@daily') or English
    ('every weekday at 9:30 in Europe/Berlin')."""
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


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` while inside; the previous handlers come back after."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@click.command()
@click.option(
    "--lookback",
    type=click.FloatRange(min=1.0),
    default=DEFAULT_LOOKBACK,
    help="Seconds back in which missed fire times are still caught up.",
)
@click.option(
    "--max-catch-up",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CATCH_UP,
    help="Most fire times one schedule enqueues in one pass (catch_up='all').",
)
@click.pass_obj
def scheduler(state: CliState, lookback: float, max_catch_up: int) -> None:
    """Run the scheduler: enqueue the app's @app.periodic tasks when due, until SIGTERM
    or Ctrl-C. Run as many as you like: each fire time is enqueued once."""
    app = state.app(need_tasks=True)
    if not app.schedules:
        log.warning("the app has no periodic schedules (@app.periodic); nothing will be enqueued")
    service = Scheduler(app, lookback=lookback, max_catch_up=max_catch_up)
    stop = threading.Event()
    with _stop_on_signals(stop):
        service.run(stop)
