"""``conveyor worker``: run a consumer until stopped (or until the queues drain, with --burst)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from conveyor.config import WorkerSettings, build, read_file_settings

if TYPE_CHECKING:
    from conveyor.cli import CliState
    from conveyor.worker.consumer import WorkerStats


def _summary(worker_id: str, stats: WorkerStats) -> str:
    return (
        f"worker {worker_id} stopped: processed {stats.processed}, "
        f"completed {stats.completed}, failed {stats.failed}, retried {stats.retried}, "
        f"cancelled {stats.cancelled}, released {stats.released}, lost {stats.lost}"
    )


@click.command()
@click.option(
    "-Q",
    "--queues",
    envvar="CONVEYOR_QUEUES",
    show_envvar=True,
    metavar="SPEC",
    help="Queues in strict order (high,default,low) or weighted (high=6,default=3,low=1). "
    "Default: default.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=1),
    envvar="CONVEYOR_PREFETCH",
    show_envvar=True,
    help="Jobs claimed per round trip. Default: 1.",
)
@click.option(
    "--burst/--no-burst",
    default=None,
    envvar="CONVEYOR_BURST",
    show_envvar=True,
    help="Exit once nothing in the queues is pending, running, retrying or blocked.",
)
@click.option(
    "--lease-seconds",
    type=float,
    envvar="CONVEYOR_LEASE_SECONDS",
    show_envvar=True,
    help="How long a claim holds a job without a heartbeat. Default: 30.",
)
@click.option(
    "--heartbeat-interval",
    type=float,
    envvar="CONVEYOR_HEARTBEAT_INTERVAL",
    show_envvar=True,
    help="Seconds between lease renewals (at most lease/4). Default: 5.",
)
@click.option(
    "--rescue-interval",
    type=float,
    envvar="CONVEYOR_RESCUE_INTERVAL",
    show_envvar=True,
    help="Seconds between sweeps for expired leases. Default: 5.",
)
@click.option(
    "--poll-interval",
    type=float,
    envvar="CONVEYOR_POLL_INTERVAL",
    show_envvar=True,
    help="Longest idle sleep without a wake-up. Default: 1.",
)
@click.option(
    "--grace",
    type=float,
    envvar="CONVEYOR_GRACE",
    show_envvar=True,
    help="On SIGTERM/SIGINT the running job gets this many seconds to finish; then it "
    "is interrupted and released back to the queue. Default: 30.",
)
@click.option(
    "--worker-id",
    envvar="CONVEYOR_WORKER_ID",
    show_envvar=True,
    help="Name of this worker in job records. Default: host:pid:random.",
)
@click.pass_obj
def worker(
    state: CliState,
    queues: str | None,
    prefetch: int | None,
    burst: bool | None,
    lease_seconds: float | None,
    heartbeat_interval: float | None,
    rescue_interval: float | None,
    poll_interval: float | None,
    grace: float | None,
    worker_id: str | None,
) -> None:
    """Run a worker in this process.

    SIGTERM or Ctrl-C stops it after the running job (unstarted jobs go back to
    the queue); a second one interrupts the running job and releases it.
    """
    from conveyor.worker.signals import worker_signals

    app = state.app(need_tasks=True)
    settings = build(
        WorkerSettings,
        flags={
            "queues": queues,
            "prefetch": prefetch,
            "burst": burst,
            "lease_seconds": lease_seconds,
            "heartbeat_interval": heartbeat_interval,
            "rescue_interval": rescue_interval,
            "poll_interval": poll_interval,
            "grace": grace,
            "worker_id": worker_id,
        },
        env=os.environ,
        file=read_file_settings(),
    )
    consumer = app.worker(settings)
    with worker_signals(consumer):
        stats = consumer.run()
    click.echo(_summary(consumer.worker_id, stats))
