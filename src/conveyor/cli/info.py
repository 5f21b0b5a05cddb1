"""``conveyor info`` (version, store, codec, tasks) and ``conveyor migrate``."""

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
def info(state: CliState, output: str) -> None:
    """Show the version, the store (driver, location, durability, schema) and the codec.

    With --app, also the registered tasks and their defaults.
    """
    data = admin.app_overview(state.app(), with_tasks=state.has_app)
    if output == "json":
        details = data.pop("store")
        state.emit_json({**data, "store_info": details})
        return
    render.info_panel(data)


@click.command()
@click.pass_obj
def migrate(state: CliState) -> None:
    """Create or upgrade the store's schema (safe to run again)."""
    version = state.app(create=True).store.migrate()
    click.echo(f"schema version {version}")
