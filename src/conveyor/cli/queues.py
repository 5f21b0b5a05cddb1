"""``conveyor queues``: jobs per queue and state, the oldest pending job's age, and
whether workers claim from it; ``pause`` and ``resume`` switch that for every worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from conveyor import admin, queue_control
from conveyor.cli import render

if TYPE_CHECKING:
    from conveyor.cli import CliState


@click.group(invoke_without_command=True)
@render.output_option
@click.pass_context
def queues(ctx: click.Context, output: str) -> None:
    """One row per queue: paused or active, counts by state and the oldest pending job's age.

    Subcommands pause and resume a queue for every worker on the store.
    """
    if ctx.invoked_subcommand is not None:
        return
    state: CliState = ctx.obj
    store = state.app().store
    rows = admin.queue_overview(store, store.now())
    if output == "json":
        state.emit_json({"queues": [row.to_dict() for row in rows]})
        return
    render.queues_table(rows)


@queues.command("pause")
@click.argument("names", nargs=-1, required=True, metavar="QUEUE...")
@render.output_option
@click.pass_obj
def pause(state: CliState, names: tuple[str, ...], output: str) -> None:
    """Stop every worker on this store claiming from these queues.

    Workers notice within one poll interval; jobs can still be enqueued, and running
    jobs finish. Resume with 'conveyor queues resume'.
    """
    result = queue_control.pause_queues(state.app().store, names)
    _report(state, result, output, "paused", "already paused")


@queues.command("resume")
@click.argument("names", nargs=-1, required=True, metavar="QUEUE...")
@render.output_option
@click.pass_obj
def resume(state: CliState, names: tuple[str, ...], output: str) -> None:
    """Let workers claim from these queues again.

    Workers notice within one poll interval.
    """
    result = queue_control.resume_queues(state.app().store, names)
    _report(state, result, output, "resumed", "not paused")


def _report(
    state: CliState, result: queue_control.QueueChange, output: str, done: str, already: str
) -> None:
    if output == "json":
        state.emit_json(result.to_dict())
        return
    parts = []
    if result.changed:
        parts.append(f"{done} {', '.join(result.changed)}")
    if result.unchanged:
        parts.append(f"{already}: {', '.join(result.unchanged)}")
    click.echo("; ".join(parts))
