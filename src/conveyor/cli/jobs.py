"""``conveyor jobs``: list, show, retry, cancel and purge jobs, by id or by filter."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from conveyor import admin
from conveyor.cli import render
from conveyor.job import JobState
from conveyor.stores.base import JobQuery

if TYPE_CHECKING:
    from conveyor.cli import CliState

F = TypeVar("F", bound=Callable[..., Any])

STATE_NAMES = [state.value for state in JobState]
FILTER_FLAGS = "--state, --queue, --task, --tag, --since, --until or --text"


class TimeType(click.ParamType[float]):
    """ISO-8601 with an offset, or a duration meaning that long ago (15m, 2h, 3d)."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Epoch seconds, or a usage error that explains the accepted forms."""
        if isinstance(value, float):
            return value
        try:
            return admin.parse_time(str(value), time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def filter_options(fn: F) -> F:
    """The job filters shared by list, retry, cancel and purge."""
    options = [
        click.option(
            "--state",
            "states",
            multiple=True,
            type=click.Choice(STATE_NAMES),
            help="Only jobs in this state (repeatable).",
        ),
        click.option("--queue", "queues", multiple=True, help="Only this queue (repeatable)."),
        click.option("--task", "tasks", multiple=True, help="Only this task (repeatable)."),
        click.option("--tag", help="Only jobs with this tag."),
        click.option(
            "--since", type=TimeType(), help="Created at or after: ISO-8601 with offset, or 2h."
        ),
        click.option(
            "--until", type=TimeType(), help="Created before: ISO-8601 with offset, or 2h."
        ),
        click.option("--text", help="Substring of id, task, queue, reason or error message."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def has_filter(filters: dict[str, Any]) -> bool:
    """True if any filter option was given."""
    return any(value not in (None, (), "") for value in filters.values())


def query_from(
    filters: dict[str, Any],
    *,
    ids: Sequence[str] = (),
    default_states: Sequence[JobState] = (),
    limit: int = 50,
    offset: int = 0,
) -> JobQuery:
    """A JobQuery from the filter options (``default_states`` when --state is absent)."""
    return admin.job_query(
        ids=ids or None,
        states=filters["states"] or default_states or None,
        queues=filters["queues"],
        tasks=filters["tasks"],
        tag=filters["tag"],
        since=filters["since"],
        until=filters["until"],
        text=filters["text"],
        limit=limit,
        offset=offset,
    )


def confirm_count(count: int, verb: str, yes: bool) -> bool:
    """Say how many jobs match and ask before acting (unless ``yes``); False if none."""
    if count == 0:
        click.echo(f"no jobs match; nothing to {verb}")
        return False
    noun = "job" if count == 1 else "jobs"
    click.echo(f"{count} {noun} match")
    if not yes:
        click.confirm(f"{verb.capitalize()} {count} {noun}?", abort=True)
    return True


def choose(
    state: CliState,
    ids: Sequence[str],
    filters: dict[str, Any],
    *,
    verb: str,
    yes: bool,
    default_states: Sequence[JobState] = (),
) -> list[str]:
    """Ids to act on: the given ids as they are, or every match of the filter after a
    confirmation. Refuses when neither is given."""
    if not has_filter(filters):
        if not ids:
            raise click.UsageError(
                f"say which jobs to {verb}: give job ids (conveyor jobs {verb} ID...) or a "
                f"filter ({FILTER_FLAGS}); with a filter you are asked to confirm (--yes skips)"
            )
        return list(dict.fromkeys(ids))
    query = query_from(filters, ids=ids, default_states=default_states)
    selected = admin.select_ids(state.app().store, query)
    return selected if confirm_count(len(selected), verb, yes) else []


def plural(count: int, noun: str = "job") -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@click.group()
def jobs() -> None:
    """Find, inspect and act on jobs."""


@jobs.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=50, help="Jobs per page.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Jobs to skip.")
@render.output_option
@click.pass_obj
def list_jobs(state: CliState, /, limit: int, offset: int, output: str, **filters: Any) -> None:
    """List jobs, newest first."""
    app = state.app()
    page = app.store.search(query_from(filters, limit=limit, offset=offset))
    items = [admin.job_to_dict(app, job, decode=output == "json") for job in page.items]
    if output == "json":
        state.emit_json(
            {"total": page.total, "limit": page.limit, "offset": page.offset, "jobs": items}
        )
        return
    render.jobs_table(items, total=page.total, offset=page.offset)


@jobs.command("show")
@click.argument("job_id", metavar="ID")
@render.output_option
@click.pass_obj
def show_job(state: CliState, job_id: str, output: str) -> None:
    """Show everything about one job: arguments, result, attempts and errors."""
    app = state.app()
    info = app.get_job(job_id)
    data = admin.job_to_dict(app, info.job)
    if output == "json":
        state.emit_json({"job": data})
        return
    render.job_detail(data)


@jobs.command("retry")
@click.argument("ids", nargs=-1, metavar="[IDS]...")
@filter_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def retry(state: CliState, /, ids: tuple[str, ...], yes: bool, **filters: Any) -> None:
    """Move failed or cancelled jobs back to pending, with fresh attempts.

    With a filter and no --state, only failed and cancelled jobs are selected.
    """
    chosen = choose(
        state, ids, filters, verb="retry", yes=yes, default_states=admin.RETRYABLE_STATES
    )
    if not chosen:
        return
    result = admin.retry_jobs(state.app().store, chosen)
    line = f"retried {plural(len(result.retried))}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (not failed or cancelled, or unknown)"
    click.echo(line)


@jobs.command("cancel")
@click.argument("ids", nargs=-1, metavar="[IDS]...")
@filter_options
@click.option(
    "--force",
    is_flag=True,
    help="Cancel processing jobs at once (their lease is revoked) instead of asking them.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def cancel(
    state: CliState, /, ids: tuple[str, ...], force: bool, yes: bool, **filters: Any
) -> None:
    """Cancel jobs that have not finished.

    Waiting jobs are cancelled at once; running ones are asked to stop (they see it
    at their next heartbeat), or stopped at once with --force.
    """
    chosen = choose(
        state, ids, filters, verb="cancel", yes=yes, default_states=admin.CANCELLABLE_STATES
    )
    if not chosen:
        return
    result = admin.cancel_jobs(state.app().store, chosen, force=force)
    line = f"cancelled {plural(len(result.cancelled))}"
    if result.requested:
        line += (
            f"; asked {plural(len(result.requested), 'running job')} to stop "
            "(seen at the next heartbeat)"
        )
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (already finished, or unknown)"
    click.echo(line)


@jobs.command("purge")
@click.argument("ids", nargs=-1, metavar="[IDS]...")
@filter_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(state: CliState, /, ids: tuple[str, ...], yes: bool, **filters: Any) -> None:
    """Delete jobs for good. Processing jobs are refused: cancel them first."""
    chosen = choose(state, ids, filters, verb="purge", yes=yes)
    if not chosen:
        return
    click.echo(purge_line(admin.purge_jobs(state.app().store, chosen)))


def purge_line(result: admin.PurgeResult) -> str:
    """``deleted N jobs; M skipped …`` for a purge."""
    line = f"deleted {plural(result.deleted)}"
    if result.processing:
        line += f"; {len(result.processing)} skipped (processing: cancel them first)"
    if result.missing:
        line += f"; {len(result.missing)} skipped (unknown id)"
    return line
