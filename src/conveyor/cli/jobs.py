"""``conveyor jobs``: list, show, retry, cancel, purge, prioritize and move jobs, by id
(or unique id prefix) or by filter."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from conveyor import admin, job_controls, validation
from conveyor.cli import render
from conveyor.errors import InvalidOption
from conveyor.job import JobState
from conveyor.job_controls import JobsChanged
from conveyor.stores.base import JobQuery

if TYPE_CHECKING:
    from conveyor.cli import CliState

F = TypeVar("F", bound=Callable[..., Any])

STATE_NAMES = [state.value for state in JobState]
WAITING: tuple[JobState, ...] = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.RETRYING,
    JobState.BLOCKED,
)
"""States prioritize and move act on, and select by default."""
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


def confirm_count(count: int, verb: str, yes: bool, *, err: bool = False) -> bool:
    """Say how many jobs match and ask before acting (unless ``yes``); False if none.

    With ``err`` the messages go to stderr (stdout carries JSON)."""
    if count == 0:
        click.echo(f"no jobs match; nothing to {verb}", err=err)
        return False
    noun = "job" if count == 1 else "jobs"
    click.echo(f"{count} {noun} match", err=err)
    if not yes:
        click.confirm(f"{verb.capitalize()} {count} {noun}?", abort=True, err=err)
    return True


def choose(
    state: CliState,
    ids: Sequence[str],
    filters: dict[str, Any],
    *,
    verb: str,
    yes: bool,
    default_states: Sequence[JobState] = (),
    output: str = "table",
) -> list[str]:
    """Ids to act on: the given ids (unique prefixes expanded), or every match of the
    filter after a confirmation. Refuses when neither is given."""
    if not has_filter(filters):
        if not ids:
            raise click.UsageError(
                f"say which jobs to {verb}: give job ids or unique id prefixes "
                f"(conveyor jobs {verb} ID...) or a filter ({FILTER_FLAGS}); with a filter "
                "you are asked to confirm (--yes skips)"
            )
        return state.app().resolve_job_ids(ids)
    app = state.app()
    query = query_from(filters, ids=app.resolve_job_ids(ids), default_states=default_states)
    selected = admin.select_ids(app.store, query)
    return selected if confirm_count(len(selected), verb, yes, err=output == "json") else []


def report(state: CliState, result: JobsChanged, output: str, line: str) -> None:
    """The outcome of an action: ``line`` as text, or the result as JSON."""
    if output == "json":
        state.emit_json(result.to_dict())
        return
    click.echo(line)


def nothing(state: CliState, action: str, output: str) -> None:
    """An action that selected no job: JSON output still says so (text was said already)."""
    if output == "json":
        state.emit_json(JobsChanged(action, [], []).to_dict())


def skipped_text(result: JobsChanged) -> str:
    """``; N skipped (reason)`` for each distinct reason, in order of first appearance."""
    counts: dict[str, int] = {}
    for skipped in result.skipped:
        counts[skipped.reason] = counts.get(skipped.reason, 0) + 1
    return "".join(f"; {count} skipped ({reason})" for reason, count in counts.items())


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
    """Show everything about one job: arguments, result, attempts and errors.

    ID may be a unique prefix of the id (like git's), e.g. the first 8 characters.
    """
    app = state.app()
    info = app.get_job(app.resolve_job_id(job_id))
    data = admin.job_to_dict(app, info.job)
    if output == "json":
        state.emit_json({"job": data})
        return
    render.job_detail(data)


def bulk_command(
    name: str, *extra: Callable[[Any], Any]
) -> Callable[[Callable[..., None]], click.Command]:
    """``conveyor jobs NAME [IDS]... [filters] [extra] [-y] [-o]``: an action on a selection."""

    options: tuple[Callable[[Any], Any], ...] = (
        click.argument("ids", nargs=-1, metavar="[IDS]..."),
        filter_options,
        *extra,
        click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
        render.output_option,
    )

    def decorate(fn: Callable[..., None]) -> click.Command:
        for option in reversed(options):
            fn = option(fn)
        return jobs.command(name)(click.pass_obj(fn))

    return decorate


def act(
    state: CliState,
    selection: tuple[Sequence[str], dict[str, Any]],
    run: Callable[[list[str]], JobsChanged],
    line: Callable[[JobsChanged], str],
    *,
    verb: str,
    yes: bool,
    output: str,
    default_states: Sequence[JobState] = (),
) -> None:
    """Choose the jobs (ids, or filters and a confirmation), ``run`` the action on them
    and report it (``line`` says it as text)."""
    ids, filters = selection
    chosen = choose(
        state, ids, filters, verb=verb, yes=yes, default_states=default_states, output=output
    )
    if not chosen:
        return nothing(state, verb, output)
    result = run(chosen)
    report(state, result, output, line(result))


@bulk_command("retry")
def retry(state: CliState, /, ids: tuple[str, ...], yes: bool, output: str, **filters: Any) -> None:
    """Move failed or cancelled jobs back to pending, with fresh attempts.

    With a filter and no --state, only failed and cancelled jobs are selected.
    """

    def line(result: JobsChanged) -> str:
        text = f"retried {plural(len(result.changed))}"
        if result.skipped:
            text += f"; {len(result.skipped)} skipped (not failed or cancelled, or unknown)"
        return text

    act(
        state,
        (ids, filters),
        lambda chosen: state.app().retry_jobs(chosen),
        line,
        verb="retry",
        yes=yes,
        output=output,
        default_states=admin.RETRYABLE_STATES,
    )


@bulk_command(
    "cancel",
    click.option(
        "--force",
        is_flag=True,
        help="Cancel processing jobs at once (their lease is revoked) instead of asking them.",
    ),
)
def cancel(
    state: CliState,
    /,
    ids: tuple[str, ...],
    force: bool,
    yes: bool,
    output: str,
    **filters: Any,
) -> None:
    """Cancel jobs that have not finished.

    Waiting jobs are cancelled at once; running ones are asked to stop (they see it
    at their next heartbeat), or stopped at once with --force.
    """

    def line(result: JobsChanged) -> str:
        text = f"cancelled {plural(len(result.changed))}"
        if result.requested:
            text += (
                f"; asked {plural(len(result.requested), 'running job')} to stop "
                "(seen at the next heartbeat)"
            )
        if result.skipped:
            text += f"; {len(result.skipped)} skipped (already finished, or unknown)"
        return text

    act(
        state,
        (ids, filters),
        lambda chosen: state.app().cancel_jobs(chosen, force=force),
        line,
        verb="cancel",
        yes=yes,
        output=output,
        default_states=admin.CANCELLABLE_STATES,
    )


@bulk_command("purge")
def purge(state: CliState, /, ids: tuple[str, ...], yes: bool, output: str, **filters: Any) -> None:
    """Delete jobs for good. Processing jobs are refused: cancel them first."""
    act(
        state,
        (ids, filters),
        state.app().purge_jobs,
        purge_line,
        verb="purge",
        yes=yes,
        output=output,
    )


def purge_line(result: JobsChanged) -> str:
    """``deleted N jobs; M skipped …`` for a purge."""
    unknown = sum(1 for s in result.skipped if s.reason == job_controls.UNKNOWN)
    line = f"deleted {plural(len(result.changed))}"
    if len(result.skipped) > unknown:
        line += f"; {len(result.skipped) - unknown} skipped (processing: cancel them first)"
    if unknown:
        line += f"; {unknown} skipped (unknown id)"
    return line


class PriorityType(click.ParamType[int]):
    """An integer from -100 to 100, or critical/high/normal/low."""

    name = "PRIORITY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The priority, or a usage error that gives the accepted range and names."""
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return validation.priority(int(text) if text.lstrip("+-").isdigit() else text)
        except InvalidOption as exc:
            self.fail(str(exc), param, ctx)


@bulk_command(
    "prioritize",
    click.option(
        "--priority",
        "-p",
        type=PriorityType(),
        required=True,
        help="New priority: -100..100 (higher runs first) or critical, high, normal, low.",
    ),
)
def prioritize(
    state: CliState,
    /,
    ids: tuple[str, ...],
    priority: int,
    yes: bool,
    output: str,
    **filters: Any,
) -> None:
    """Change the priority of waiting jobs (pending, scheduled, retrying, blocked).

    A pending job takes its new place in its queue at once. With a filter and no
    --state, only waiting jobs are selected.
    """
    act(
        state,
        (ids, filters),
        lambda chosen: state.app().prioritize_jobs(chosen, priority),
        lambda result: (
            f"set priority {priority} on {plural(len(result.changed))}{skipped_text(result)}"
        ),
        verb="prioritize",
        yes=yes,
        output=output,
        default_states=WAITING,
    )


@bulk_command(
    "move",
    click.option("--to-queue", "to_queue", required=True, metavar="QUEUE", help="Target queue."),
)
def move(
    state: CliState,
    /,
    ids: tuple[str, ...],
    to_queue: str,
    yes: bool,
    output: str,
    **filters: Any,
) -> None:
    """Move waiting jobs (pending, scheduled, retrying, blocked) to another queue.

    Workers of the target queue pick moved pending jobs up at once. With a filter and
    no --state, only waiting jobs are selected.
    """
    target = validation.queue_name(to_queue, "--to-queue")
    act(
        state,
        (ids, filters),
        lambda chosen: state.app().move_jobs(chosen, target),
        lambda result: f"moved {plural(len(result.changed))} to {target}{skipped_text(result)}",
        verb="move",
        yes=yes,
        output=output,
        default_states=WAITING,
    )
