"""``conveyor scaling``: the autoscaling signal, for an external autoscaler.

The same computation the supervisor's ``--autoscale`` uses: run ``conveyor
scaling -Q emails -o json`` from a KEDA/HPA external-metrics adapter or a cron
job and scale the worker Deployment to ``suggested_workers``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from conveyor import admin
from conveyor.cli import render
from conveyor.cli.options import queues_option
from conveyor.queues import parse_queues

if TYPE_CHECKING:
    from conveyor.cli import CliState


@click.command()
@queues_option("Queues to size workers for (weights are ignored). Default: every queue.")
@click.option(
    "--jobs-per-worker",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Outstanding jobs one worker process should stand for.",
)
@render.output_option
@click.pass_obj
def scaling(state: CliState, queues: str | None, jobs_per_worker: int, output: str) -> None:
    """Backlog (pending, processing, oldest wait) and the worker count it calls for."""
    names = parse_queues(queues).names if queues else None
    store = state.app().store
    signal = admin.scaling_signal(store, names, store.now(), jobs_per_worker=jobs_per_worker)
    if output == "json":
        state.emit_json(dataclasses.asdict(signal))
        return
    click.echo(
        f"queues {','.join(signal.queues) or '-'}: pending {signal.pending}, "
        f"processing {signal.processing}, oldest wait {render.age(signal.oldest_wait_seconds)} "
        f"-> suggested workers {signal.suggested_workers}"
    )
