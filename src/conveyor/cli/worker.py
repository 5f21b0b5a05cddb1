"""``conveyor worker``: a supervisor with N worker children (or one in-process worker
with ``--solo``), until stopped or, with ``--burst``, until the queues drain."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from conveyor.cli.options import DURATION
from conveyor.config import WorkerSettings, build, read_file_settings

if TYPE_CHECKING:
    from conveyor.cli import CliState


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
    "--ack-flush-interval",
    type=DURATION,
    envvar="CONVEYOR_ACK_FLUSH_INTERVAL",
    show_envvar=True,
    help="Longest a finished job's completion waits to be written with others "
    "(0: each at once). Default: 0.005.",
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
    type=DURATION,
    envvar="CONVEYOR_LEASE_SECONDS",
    show_envvar=True,
    help="How long a claim holds a job without a heartbeat. Default: 30.",
)
@click.option(
    "--heartbeat-interval",
    type=DURATION,
    envvar="CONVEYOR_HEARTBEAT_INTERVAL",
    show_envvar=True,
    help="Seconds between lease renewals (at most lease/4). Default: 5.",
)
@click.option(
    "--rescue-interval",
    type=DURATION,
    envvar="CONVEYOR_RESCUE_INTERVAL",
    show_envvar=True,
    help="Seconds between sweeps for expired leases. Default: 5.",
)
@click.option(
    "--poll-interval",
    type=DURATION,
    envvar="CONVEYOR_POLL_INTERVAL",
    show_envvar=True,
    help="Longest idle sleep without a wake-up. Default: 1.",
)
@click.option(
    "--grace",
    type=DURATION,
    envvar="CONVEYOR_GRACE",
    show_envvar=True,
    help="On SIGTERM/SIGINT the running job gets this many seconds to finish; then it "
    "is interrupted and released back to the queue. Default: 30.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    envvar="CONVEYOR_CONCURRENCY",
    show_envvar=True,
    help="Worker processes the supervisor keeps running. Default: 1.",
)
@click.option(
    "--autoscale",
    metavar="MIN,MAX",
    envvar="CONVEYOR_AUTOSCALE",
    show_envvar=True,
    help="Grow and shrink the number of worker processes between MIN and MAX from queue "
    "depth and wait time (replaces -c).",
)
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=0),
    envvar="CONVEYOR_MAX_TASKS_PER_CHILD",
    show_envvar=True,
    help="Replace a worker process after this many jobs (0: never).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=0),
    envvar="CONVEYOR_MAX_MEMORY_PER_CHILD",
    show_envvar=True,
    help="Replace a worker process whose RSS passes this many MiB (checked during each job; "
    "the job finishes first) (0: never).",
)
@click.option(
    "--max-memory-per-job",
    type=click.IntRange(min=0),
    envvar="CONVEYOR_MAX_MEMORY_PER_JOB",
    show_envvar=True,
    help="Stop a job whose worker process passes this many MiB of RSS while it runs; it "
    "fails with MemoryLimitExceeded and is retried per its policy (0: no limit).",
)
@click.option(
    "--max-child-lifetime",
    type=DURATION,
    envvar="CONVEYOR_MAX_CHILD_LIFETIME",
    show_envvar=True,
    help="Replace a worker process after this many seconds (0: never).",
)
@click.option(
    "--hard-timeout-grace",
    type=DURATION,
    envvar="CONVEYOR_HARD_TIMEOUT_GRACE",
    show_envvar=True,
    help="Seconds past a job's timeout before its process is killed. Default: 5.",
)
@click.option(
    "--liveness-timeout",
    type=DURATION,
    envvar="CONVEYOR_LIVENESS_TIMEOUT",
    show_envvar=True,
    help="Kill a worker process silent for this long. Default: 3 heartbeats, at least 5 s.",
)
@click.option(
    "--capabilities",
    envvar="CONVEYOR_CAPABILITIES",
    show_envvar=True,
    help="Comma-separated tags this node offers (shown by `conveyor nodes`).",
)
@click.option(
    "--retention-completed",
    metavar="AGE",
    envvar="CONVEYOR_RETENTION_COMPLETED",
    show_envvar=True,
    help="Delete completed jobs (and results) this long after they finish: 45s, 30m, 12h, "
    "1d, 2w, or 'forever'. Default: 1d.",
)
@click.option(
    "--retention-failed",
    metavar="AGE",
    envvar="CONVEYOR_RETENTION_FAILED",
    show_envvar=True,
    help="The same for failed (DLQ) jobs. Default: 14d.",
)
@click.option(
    "--retention-cancelled",
    metavar="AGE",
    envvar="CONVEYOR_RETENTION_CANCELLED",
    show_envvar=True,
    help="The same for cancelled jobs. Default: 1d.",
)
@click.option(
    "--prune-interval",
    type=DURATION,
    envvar="CONVEYOR_PRUNE_INTERVAL",
    show_envvar=True,
    help="Time between pruning passes: 60, 90s, 5m (one worker of the store prunes). Default: 60.",
)
@click.option(
    "--solo",
    is_flag=True,
    envvar="CONVEYOR_WORKER_SOLO",
    show_envvar=True,
    help="Run one worker in this process, without a supervisor (debugging, containers "
    "that run one process each).",
)
@click.option(
    "--with-scheduler",
    is_flag=True,
    envvar="CONVEYOR_WORKER_WITH_SCHEDULER",
    show_envvar=True,
    help="Also run the scheduler (as `conveyor scheduler` does): a thread with --solo, "
    "else a child process. Safe on any number of workers: one leads.",
)
@click.option(
    "--worker-id",
    envvar="CONVEYOR_WORKER_ID",
    show_envvar=True,
    help="Name of this worker in job records. Default: host:pid:random.",
)
@click.option(
    "--condition-error-limit",
    type=click.IntRange(min=1),
    envvar="CONVEYOR_CONDITION_ERROR_LIMIT",
    show_envvar=True,
    help="A job whose conditions raise this many times in a row fails with reason "
    "condition_error. Default: 5.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Log warnings and errors only (no per-job lines): --log-level WARNING.",
)
@click.option(
    "--log-level",
    "worker_log_level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Log level (as the global option; this one wins). Per-job lines are INFO.",
)
@click.option(
    "--log-format",
    "worker_log_format",
    type=click.Choice(["text", "json"]),
    help="logfmt lines (text) or one JSON object per line (as the global option).",
)
@click.pass_obj
def worker(
    state: CliState,
    queues: str | None,
    prefetch: int | None,
    ack_flush_interval: float | None,
    burst: bool | None,
    lease_seconds: float | None,
    heartbeat_interval: float | None,
    rescue_interval: float | None,
    poll_interval: float | None,
    grace: float | None,
    concurrency: int | None,
    autoscale: str | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    max_memory_per_job: int | None,
    max_child_lifetime: float | None,
    hard_timeout_grace: float | None,
    liveness_timeout: float | None,
    capabilities: str | None,
    retention_completed: str | None,
    retention_failed: str | None,
    retention_cancelled: str | None,
    prune_interval: float | None,
    solo: bool,
    with_scheduler: bool,
    worker_id: str | None,
    condition_error_limit: int | None,
    quiet: bool,
    worker_log_level: str | None,
    worker_log_format: str | None,
) -> None:
    """Run a worker in this process.

    SIGTERM or Ctrl-C stops it after the running job (unstarted jobs go back to
    the queue); a second one interrupts the running job and releases it.
    """
    from conveyor.logs import current_logging, override_logging
    from conveyor.scheduler.embedded import SchedulerProcess, SchedulerThread
    from conveyor.worker.banner import log_banner, summary
    from conveyor.worker.launcher import ExecLauncher, ForkLauncher
    from conveyor.worker.signals import worker_signals
    from conveyor.worker.supervisor import Supervisor

    override_logging(worker_log_level or ("WARNING" if quiet else None), worker_log_format)
    settings = build(
        WorkerSettings,
        flags={
            "queues": queues,
            "prefetch": prefetch,
            "ack_flush_interval": ack_flush_interval,
            "burst": burst,
            "lease_seconds": lease_seconds,
            "heartbeat_interval": heartbeat_interval,
            "rescue_interval": rescue_interval,
            "poll_interval": poll_interval,
            "grace": grace,
            "concurrency": concurrency,
            "autoscale": autoscale,
            "max_tasks_per_child": max_tasks_per_child,
            "max_memory_per_child": max_memory_per_child,
            "max_memory_per_job": max_memory_per_job,
            "max_child_lifetime": max_child_lifetime,
            "hard_timeout_grace": hard_timeout_grace,
            "liveness_timeout": liveness_timeout,
            "capabilities": capabilities,
            "retention_completed": retention_completed,
            "retention_failed": retention_failed,
            "retention_cancelled": retention_cancelled,
            "prune_interval": prune_interval,
            "worker_id": worker_id,
            "condition_error_limit": condition_error_limit,
        },
        env=os.environ,
        file=read_file_settings(),
    )
    app = state.app(need_tasks=True, service=True)  # settings first: bad flags fail fast
    if solo:
        consumer = app.worker(settings)
        log_banner(app, settings, consumer.worker_id, mode="solo")
        embedded: SchedulerThread | SchedulerProcess | None = (
            SchedulerThread(app) if with_scheduler else None
        )
        if embedded is not None:
            embedded.start()
        try:
            with worker_signals(consumer):
                stats = consumer.run()
        finally:
            if embedded is not None:
                embedded.stop()
        click.echo(summary(consumer.worker_id, stats))
        return
    assert state.app_spec is not None
    level, fmt = current_logging()
    fresh = ExecLauncher(
        state.app_spec, store=state.store_dsn or "", log_level=level, log_format=fmt
    )
    supervisor = Supervisor(app, settings, ForkLauncher(app, fresh))
    log_banner(app, settings, supervisor.node_id, mode="prefork")
    embedded = SchedulerProcess.for_app(state.app_spec, state.store_dsn) if with_scheduler else None
    if embedded is not None:
        embedded.start()
    try:
        status = supervisor.run()
    finally:
        if embedded is not None:
            embedded.stop()
    click.echo(summary(supervisor.node_id, supervisor.totals))
    if status:
        raise SystemExit(status)
