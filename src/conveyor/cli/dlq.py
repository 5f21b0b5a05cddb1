"""``conveyor dlq``: the dead-letter queue (jobs in state ``failed``): list, retry, purge."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from conveyor import admin
from conveyor.cli import render
from conveyor.cli.jobs import confirm_count, plural, purge_line

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
) -> list[str]:
    """Failed jobs to act on: given ids (only those in the DLQ), or a confirmed selection."""
    if not (ids or queue or task or select_all):
        raise click.UsageError(
            f"say which failed jobs to {verb}: give job ids (conveyor dlq {verb} ID...), "
            f"--queue/--task, or --all for the whole dead-letter queue"
        )
    store = state.app().store
    query = admin.dlq_query(queue=queue, task=task, ids=ids or None)
    selected = admin.select_ids(store, query)
    if ids and not (queue or task or select_all):
        outside = len(set(ids)) - len(selected)
        if outside:
            click.echo(f"{plural(outside)} not in the dead-letter queue (skipped)")
        return selected
    return selected if confirm_count(len(selected), verb, yes) else []


def _selection_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.argument("ids", nargs=-1, metavar="[IDS]..."),
            click.option("--queue", help="Only failed jobs of this queue."),
            click.option("--task", help="Only failed jobs of this task."),
            click.option("--all", "select_all", is_flag=True, help="Every failed job."),
            click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
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


@dlq.command("retry")
@_selection_options
@click.pass_obj
def retry_dlq(
    state: CliState,
    ids: tuple[str, ...],
    queue: str | None,
    task: str | None,
    select_all: bool,
    yes: bool,
) -> None:
    """Move failed jobs back to pending with fresh attempts."""
    chosen = _choose(state, ids, queue, task, select_all, verb="retry", yes=yes)
    if not chosen:
        return
    result = admin.retry_jobs(state.app().store, chosen)
    line = f"retried {plural(len(result.retried))}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (no longer failed)"
    click.echo(line)


@dlq.command("purge")
@_selection_options
@click.pass_obj
def purge_dlq(
    state: CliState,
    ids: tuple[str, ...],
    queue: str | None,
    task: str | None,
    select_all: bool,
    yes: bool,
) -> None:
    """Delete failed jobs for good."""
    chosen = _choose(state, ids, queue, task, select_all, verb="purge", yes=yes)
    if not chosen:
        return
    click.echo(purge_line(admin.purge_jobs(state.app().store, chosen)))
