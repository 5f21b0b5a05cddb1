"""``conveyor prune``: delete finished jobs past their retention now (what workers do
every ``--prune-interval``), or with ``--dry-run`` count them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from conveyor.cli import render
from conveyor.config import WorkerSettings, build, read_file_settings

if TYPE_CHECKING:
    from conveyor.cli import CliState

_DURATION_HELP = "a duration (45s, 30m, 12h, 1d, 2w) or 'forever'"


@click.command()
@click.option(
    "--retention-completed",
    "--completed",
    "completed",
    metavar="AGE",
    help=f"Delete completed jobs finished longer ago than this: {_DURATION_HELP}. Default: 1d.",
)
@click.option(
    "--retention-failed",
    "--failed",
    "failed",
    metavar="AGE",
    help="The same for failed (DLQ) jobs. Default: 14d.",
)
@click.option(
    "--retention-cancelled",
    "--cancelled",
    "cancelled",
    metavar="AGE",
    help="The same for cancelled jobs. Default: 1d.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Jobs deleted per transaction (workers on the store wait at most one batch).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@render.output_option
@click.pass_obj
def prune(
    state: CliState,
    completed: str | None,
    failed: str | None,
    cancelled: str | None,
    batch: int,
    dry_run: bool,
    output: str,
) -> None:
    """Delete completed, failed and cancelled jobs older than their retention.

    The retention comes from these options, else from the same settings as the
    worker's (CONVEYOR_RETENTION_*, conveyor.toml), else the defaults.
    """
    from conveyor.maintenance.pruner import prune as run_pass
    from conveyor.maintenance.retention import Retention

    settings = build(
        WorkerSettings,
        flags={
            "retention_completed": completed,
            "retention_failed": failed,
            "retention_cancelled": cancelled,
        },
        env=os.environ,
        file=read_file_settings(),
    )
    retention = Retention.of(settings)
    store = state.app().store
    report = run_pass(store, retention, batch=batch, dry_run=dry_run)
    if output == "json":
        state.emit_json(
            {
                "dry_run": dry_run,
                "retention": retention.as_dict(),
                "deleted": report.deleted,
                "related_rows": report.orphans,
                "batches": report.batches,
                "seconds": round(report.seconds, 6),
                "longest_batch_seconds": round(report.longest_batch, 6),
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    for name, keep in retention.as_dict().items():
        if name in report.deleted:
            click.echo(f"{name}: {verb} {report.deleted[name]} (older than {keep})")
        else:
            click.echo(f"{name}: kept forever")
    if not dry_run:
        click.echo(
            f"{report.orphans} related rows deleted (key holds, dependency rows, records); "
            f"{report.batches} batches in "
            f"{report.seconds:.2f}s (longest {report.longest_batch:.3f}s)"
        )
