"""``conveyor queues``: jobs per queue and state, and how long the oldest pending job waits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from conveyor import admin
from conveyor.cli import render

if TYPE_CHECKING:
    from conveyor.cli import CliState


@click.command()
@render.output_option
@click.pass_obj
def queues(state: CliState, output: str) -> None:
    """One row per queue: counts by state and the oldest pending job's age."""
    store = state.app().store
    rows = admin.queue_overview(store, store.now())
    if output == "json":
        state.emit_json({"queues": [row.to_dict() for row in rows]})
        return
    render.queues_table(rows)
