"""``conveyor dlq``: the dead-letter queue (jobs in state ``failed``): list, retry, purge."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from conveyor import admin
from conveyor.app import App
from conveyor.cli import render
from conveyor.cli.jobs import confirm_count, plural, purge_line, report
from conveyor.job_controls import JobsChanged, Skipped

if TYPE_CHECKING:
    from conveyor.cli import CliState


def _choose(
    state: CliState,
    ids: tuple[str, ...],
    queue: str | None,
    task: str | None,
    select_all: bool,
    *,
    verb: str,
    yes: bool,
    output: str,
) -> tuple[list[str], list[str]]:
    """Failed jobs to act on: given ids or unique prefixes (only those in the DLQ), or a
    confirmed selection; and the given ids that are not in the DLQ."""
    if not (ids or queue or task or select_all):
        raise click.UsageError(
            f"say which failed jobs to {verb}: give job ids (conveyor dlq {verb} ID...), "
            f"--queue/--task, or --all for the whole dead-letter queue"
        )
    app = state.app()
    given = app.resolve_job_ids(ids)
    selected = admin.select_ids(app.store, admin.dlq_query(queue=queue, task=task, ids=given))
    err = output == "json"
    if ids and not (queue or task or select_all):
        in_dlq = set(selected)
        outside = [i for i in given if i not in in_dlq]
        if outside:
            click.echo(f"{plural(len(outside))} not in the dead-letter queue (skipped)", err=err)
        return selected, outside
    return (selected if confirm_count(len(selected), verb, yes, err=err) else []), []


def _report(
    state: CliState, result: JobsChanged, outside: list[str], output: str, line: str
) -> None:
    """The outcome, counting the given ids that were not in the DLQ as skipped."""
    skipped = [Skipped(i, "not in the dead-letter queue") for i in outside]
    report(state, dataclasses.replace(result, skipped=skipped + result.skipped), output, line)


def _selection_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.argument("ids", nargs=-1, metavar="[IDS]..."),
            click.option("--queue", help="Only failed jobs of this queue."),
            click.option("--task", help="Only failed jobs of this task."),
            click.option("--all", "select_all", is_flag=True, help="Every failed job."),
            click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
            render.output_option,
        ]
    ):
        fn = option(fn)
    return fn


@click.group()
def dlq() -> None:
    """The dead-letter queue: jobs that exhausted their attempts or could not run."""


@dlq.command("list")
@click.option("--queue", help="Only this queue.")
@click.option("--task", help="Only this task.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, help="Jobs to show.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Jobs to skip.")
@render.output_option
@click.pass_obj
def list_dlq(
    state: CliState, queue: str | None, task: str | None, limit: int, offset: int, output: str
) -> None:
    """List failed jobs, newest first, with their reason and last error."""
    app = state.app()
    page = app.store.search(admin.dlq_query(queue=queue, task=task, limit=limit, offset=offset))
    items = [admin.job_to_dict(app, job, decode=output == "json") for job in page.items]
    if output == "json":
        state.emit_json(
            {"total": page.total, "limit": page.limit, "offset": page.offset, "jobs": items}
        )
        return
    render.dlq_table(items, total=page.total)


def _act(
    state: CliState,
    verb: str,
    act: Callable[[App, list[str]], JobsChanged],
    line: Callable[[JobsChanged], str],
    *,
    ids: tuple[str, ...],
    queue: str | None,
    task: str | None,
    select_all: bool,
    yes: bool,
    output: str,
) -> None:
    """Choose the failed jobs, ``act`` on them and report (``line`` says it as text)."""
    chosen, outside = _choose(
        state, ids, queue, task, select_all, verb=verb, yes=yes, output=output
    )
    result = act(state.app(), chosen) if chosen else JobsChanged(verb, [], [])
    if chosen or output == "json":
        _report(state, result, outside, output, line(result))


def _retry_line(result: JobsChanged) -> str:
    line = f"retried {plural(len(result.changed))}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (no longer failed)"
    return line


@dlq.command("retry")
@_selection_options
@click.pass_obj
def retry_dlq(state: CliState, /, **selection: Any) -> None:
    """Move failed jobs back to pending with fresh attempts."""
    _act(state, "retry", App.retry_jobs, _retry_line, **selection)


@dlq.command("purge")
@_selection_options
@click.pass_obj
def purge_dlq(state: CliState, /, **selection: Any) -> None:
    """Delete failed jobs for good."""
    _act(state, "purge", App.purge_jobs, purge_line, **selection)
