"""End-to-end demo: enqueue a mix of jobs, run a real worker process, show what happened.

Usage::

    python examples/demo.py [--db PATH] [--jobs N] [--timeout SECONDS]

Creates a fresh SQLite store (default ``./demo.db``), enqueues about ``N`` jobs
(quick, slow, failing, a chain, a report with dependencies, two queues), starts
``python -m conveyor ... worker --burst`` as a separate process, shows a progress
bar until the worker exits by itself, then prints jobs by queue and state, the
chain's result and the dead-letter queue. Exits 0 when everything ended as
expected, 1 otherwise (2 if the worker had to be killed after ``--timeout``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor import App, JobState, admin
from conveyor.admin import STATE_ORDER, QueueRow
from conveyor.stores.base import Store

HERE = Path(__file__).resolve().parent
FIXED_JOBS = 3 + 3 + 8 + 1
"""Chain steps, failing charges, slow resizes and the report; the rest are quick adds."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="demo.db", help="SQLite file (recreated)")
    parser.add_argument("--jobs", type=int, default=60, help="about how many jobs to enqueue")
    parser.add_argument("--timeout", type=float, default=30.0, help="kill the worker after this")
    return parser.parse_args(argv)


def fresh_database(path: Path) -> None:
    """Remove the database and its WAL/SHM/wake-up companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    wake = Path(f"{path}.wake")
    if wake.is_dir():
        for entry in wake.iterdir():
            entry.unlink(missing_ok=True)
        wake.rmdir()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit code."""
    options = parse_args(argv)
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=max(out.width, 140))
    db = Path(options.db).resolve()
    fresh_database(db)
    dsn = f"sqlite:///{db}"
    os.environ["CONVEYOR_STORE"] = dsn  # demo_app's App() reads it at import

    import demo_app

    app = demo_app.app
    expected = enqueue_mix(max(options.jobs - FIXED_JOBS, 1))
    total = sum(len(ids) for ids in expected.values())
    out.print(f"enqueued [bold]{total}[/] jobs into {db}")

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "conveyor",
        "--app",
        "demo_app:app",
        "--store",
        dsn,
        "worker",
        "-Q",
        "high=3,default=1",
        "--burst",
        "--poll-interval",
        "0.2",
    ]
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            timed_out = follow(app.store, worker, total, options.timeout, out)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        log.seek(0)
        worker_output = log.read().decode(errors="replace")
    if timed_out or worker.returncode != 0:
        if timed_out:
            out.print(f"[red]the worker did not finish within {options.timeout:g}s; stopped it[/]")
        else:
            out.print(f"[red]the worker exited with {worker.returncode}[/]")
        out.print(worker_output[-3000:], markup=False)
        return 2 if timed_out else 1
    out.print(worker_output.strip().splitlines()[-1], markup=False)

    show_summary(admin.queue_overview(app.store, app.store.now()), out)
    chain_result = app.get_job(expected["chain"][-1]).result
    report_result = app.get_job(expected["report"][0]).result
    out.print(f"chain result: [bold]{escape(repr(chain_result))}[/]")
    out.print(f"report result: [bold]{escape(repr(report_result))}[/]")
    show_dlq(app, out)
    problems = check(app, expected)
    app.close()
    if problems:
        out.print("[red]unexpected outcome:[/]")
        for problem in problems:
            out.print(f"  - {problem}")
        return 1
    out.print("[green]all jobs ended as expected[/]")
    out.print(
        f"explore: conveyor --store {dsn} jobs list | queues | dlq list | jobs show ID",
        markup=False,
    )
    return 0


def enqueue_mix(quick: int) -> dict[str, list[str]]:
    """Enqueue the demo's jobs; return their ids by kind."""
    import demo_app

    kinds: dict[str, list[str]] = {"quick": [], "slow": [], "chain": [], "flaky": [], "report": []}
    for i in range(quick):
        task = demo_app.add
        if i % 3 == 0:
            task = task.with_options(queue="high", priority=5, tags=["urgent"])
        kinds["quick"].append(task.enqueue(i, i * 2).id)
    for i in range(8):
        kinds["slow"].append(demo_app.resize_image.enqueue(f"photo-{i}", 320 + 80 * i).id)
    chain = demo_app.app.chain(
        demo_app.fetch.s("https://example.com/conveyor"),
        demo_app.parse.s(),
        demo_app.store_result.s("saved"),
    ).enqueue()
    kinds["chain"] = chain.ids
    for i in range(3):
        kinds["flaky"].append(demo_app.flaky_charge.enqueue(f"order-{i}", 999 + i).id)
    depends = [*kinds["slow"][:4], chain.last.id]
    report = demo_app.report.with_options(depends_on=depends).enqueue("nightly")
    kinds["report"].append(report.id)
    return kinds


def follow(
    store: Store, worker: subprocess.Popen[bytes], total: int, limit: float, out: Console
) -> bool:
    """Show progress until the worker exits; True if it had to be stopped after ``limit``."""
    deadline = time.monotonic() + limit
    columns = (
        TextColumn("[bold]jobs finished"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=False) as progress:
        bar = progress.add_task("jobs", total=total)
        while True:
            done = sum(
                row.counts.get(state, 0)
                for row in store.stats()
                for state in ("completed", "failed", "cancelled")
            )
            progress.update(bar, completed=done)
            if worker.poll() is not None:
                return False
            if time.monotonic() > deadline:
                worker.terminate()
                try:
                    worker.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
                return True
            time.sleep(0.2)


def show_summary(rows: list[QueueRow], out: Console) -> None:
    """Jobs by queue and state."""
    table = Table(title="jobs by queue and state", title_justify="left", header_style="bold")
    table.add_column("queue", style="bold")
    states = [s.value for s in STATE_ORDER]
    for state in states:
        table.add_column(state, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(row.queue, *(str(row.counts[s]) for s in states), str(row.total))
    out.print(table)


def show_dlq(app: App, out: Console) -> None:
    """The dead-letter queue with each job's reason and last error."""
    page = app.store.search(admin.dlq_query(limit=100))
    table = Table(title="dead-letter queue", title_justify="left", header_style="bold")
    for column in ("id", "task", "reason", "attempts", "last error"):
        table.add_column(column, no_wrap=column == "id")
    for job in page.items:
        last = f"{job.errors[-1].type}: {job.errors[-1].message}" if job.errors else ""
        table.add_row(
            job.id,
            job.task,
            job.failure_reason or "-",
            f"{job.attempt}/{job.max_attempts}",
            escape(last),
        )
    out.print(table)


def check(app: App, expected: dict[str, list[str]]) -> list[str]:
    """What did not end as planned (empty when all is well)."""
    problems: list[str] = []
    for kind, ids in expected.items():
        for job_id in ids:
            job = app.get_job(job_id).job
            if kind == "flaky":
                if job.state is not JobState.FAILED or job.failure_reason != "exhausted":
                    problems.append(f"{kind} job {job_id} is {job.state} ({job.failure_reason})")
                elif job.attempt != job.max_attempts or len(job.errors) != job.max_attempts:
                    problems.append(f"{kind} job {job_id} ran {job.attempt} attempts")
            elif job.state is not JobState.COMPLETED:
                problems.append(f"{kind} job {job_id} is {job.state} ({job.failure_reason})")
    return problems


if __name__ == "__main__":
    sys.exit(main())
