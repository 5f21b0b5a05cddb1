"""``conveyor worker``: a supervisor with N worker children (or one in-process worker
with ``--solo``), until stopped or, with ``--burst``, until the queues drain."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli.options import DURATION, queues_option
from conveyor.config import WorkerSettings, build, read_file_settings

if TYPE_CHECKING:
    from conveyor.app import App
    from conveyor.cli import CliState
    from conveyor.scheduler.embedded import SchedulerProcess, SchedulerThread


@click.command()
@queues_option(
    "Queues in strict order (high,default,low) or weighted (high=6,default=3,low=1). "
    "Default: default."
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=1),
    help="Jobs claimed per round trip. Default: 1.",
)
@click.option(
    "--ack-flush-interval",
    type=DURATION,
    help="Longest a finished job's completion waits to be written with others "
    "(0: each at once). Default: 0.005.",
)
@click.option(
    "--burst/--no-burst",
    default=None,
    help="Exit once nothing in the queues is pending, running, retrying or blocked.",
)
@click.option(
    "--lease-seconds",
    type=DURATION,
    help="How long a claim holds a job without a heartbeat. Default: 30.",
)
@click.option(
    "--heartbeat-interval",
    type=DURATION,
    help="Seconds between lease renewals (at most lease/4). Default: 5.",
)
@click.option(
    "--rescue-interval",
    type=DURATION,
    help="Seconds between sweeps for expired leases. Default: 5.",
)
@click.option(
    "--poll-interval",
    type=DURATION,
    help="Longest idle sleep without a wake-up. Default: 1.",
)
@click.option(
    "--grace",
    type=DURATION,
    help="On SIGTERM/SIGINT the running job gets this many seconds to finish; then it "
    "is interrupted and released back to the queue. Default: 30.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Worker processes the supervisor keeps running. Default: 1.",
)
@click.option(
    "--autoscale",
    metavar="MIN,MAX",
    help="Grow and shrink the number of worker processes between MIN and MAX from queue "
    "depth and wait time (replaces -c).",
)
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=0),
    help="Replace a worker process after this many jobs (0: never).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=0),
    help="Replace a worker process whose RSS passes this many MiB (checked during each job; "
    "the job finishes first) (0: never).",
)
@click.option(
    "--max-memory-per-job",
    type=click.IntRange(min=0),
    help="Stop a job whose worker process passes this many MiB of RSS while it runs; it "
    "fails with MemoryLimitExceeded and is retried per its policy (0: no limit).",
)
@click.option(
    "--max-child-lifetime",
    type=DURATION,
    help="Replace a worker process after this many seconds (0: never).",
)
@click.option(
    "--hard-timeout-grace",
    type=DURATION,
    help="Seconds past a job's timeout before its process is killed. Default: 5.",
)
@click.option(
    "--liveness-timeout",
    type=DURATION,
    help="Kill a worker process silent for this long. Default: 3 heartbeats, at least 5 s.",
)
@click.option(
    "--capabilities",
    help="Comma-separated tags this node offers (shown by `conveyor nodes`).",
)
@click.option(
    "--retention-completed",
    metavar="AGE",
    help="Delete completed jobs (and results) this long after they finish: 45s, 30m, 12h, "
    "1d, 2w, or 'forever'. Default: 1d.",
)
@click.option(
    "--retention-failed",
    metavar="AGE",
    help="The same for failed (DLQ) jobs. Default: 14d.",
)
@click.option(
    "--retention-cancelled",
    metavar="AGE",
    help="The same for cancelled jobs. Default: 1d.",
)
@click.option(
    "--prune-interval",
    type=DURATION,
    help="Time between pruning passes: 60, 90s, 5m (one worker of the store prunes). Default: 60.",
)
@click.option(
    "--solo",
    is_flag=True,
    help="Run one worker in this process, without a supervisor (debugging, containers "
    "that run one process each).",
)
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="Also run the scheduler (as `conveyor scheduler` does): a thread with --solo, "
    "else a child process. Safe on any number of workers: one leads.",
)
@click.option(
    "--worker-id",
    help="Name of this worker in job records. Default: host:pid:random.",
)
@click.option(
    "--condition-error-limit",
    type=click.IntRange(min=1),
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
    /,
    solo: bool,
    with_scheduler: bool,
    quiet: bool,
    worker_log_level: str | None,
    worker_log_format: str | None,
    **flags: Any,
) -> None:
    """Run a worker in this process.

    SIGTERM or Ctrl-C stops it after the running job (unstarted jobs go back to
    the queue); a second one interrupts the running job and releases it.
    """
    from conveyor.logs import current_logging, override_logging
    from conveyor.worker.banner import log_banner, summary
    from conveyor.worker.launcher import ExecLauncher, ForkLauncher
    from conveyor.worker.signals import worker_signals
    from conveyor.worker.supervisor import Supervisor

    override_logging(worker_log_level or ("WARNING" if quiet else None), worker_log_format)
    settings = build(
        WorkerSettings,
        flags=flags,  # every other option is a WorkerSettings field of the same name
        env=os.environ,
        file=read_file_settings(),
    )
    app = state.app(need_tasks=True, service=True)  # settings first: bad flags fail fast
    if solo:
        consumer = app.worker(settings)
        log_banner(app, settings, consumer.worker_id, mode="solo")
        embedded = _embedded_scheduler(state, app, thread=True) if with_scheduler else None
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
    embedded = _embedded_scheduler(state, app, thread=False) if with_scheduler else None
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


def _embedded_scheduler(
    state: CliState, app: App, *, thread: bool
) -> SchedulerThread | SchedulerProcess:
    """The scheduler run beside the worker (``--with-scheduler``): in a thread of a solo
    worker, else in a process of its own. Imported only then: the scheduler's modules
    (cron, recurrences, zones) cost every worker's start-up ~35 ms."""
    from conveyor.scheduler.embedded import SchedulerProcess, SchedulerThread

    if thread:
        return SchedulerThread(app)
    assert state.app_spec is not None
    return SchedulerProcess.for_app(state.app_spec, state.store_dsn)
