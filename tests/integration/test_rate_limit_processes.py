"""Two real ``conveyor worker`` process trees on one SQLite file share their limits.

Each tree runs two worker children (``-c 2``), so four processes consume at once: more
than the concurrency limit allows, so the limits (held in the store) are what keeps the
counts down. Every handler appends one line (kind, job id, pid, parent pid, start, end)
to a log file with a single ``O_APPEND`` write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor import App, JobState
from conveyor.config import AppSettings

pytestmark = pytest.mark.slow

RATE_N, RATE_PER = 3, 1.0
CONCURRENCY_M = 2
RATE_JOBS, CONCURRENT_JOBS = 12, 8

APP_MODULE = textwrap.dedent(
    f"""
    import os, time
    from conveyor import App, current_job
    from conveyor import Concurrency, RateLimit

    app = App()
    LOG = os.environ["RATE_TEST_LOG"]


    def note(kind, start):
        line = f"{{kind}} {{current_job().job_id}} {{os.getpid()}} {{os.getppid()}} "
        line += f"{{start!r}} {{time.time()!r}}\\n"
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


    @app.task(name="limited", max_attempts=1, limits=[RateLimit({RATE_N}, per={RATE_PER})])
    def limited(n):
        start = time.time()
        time.sleep(0.02)
        note("limited", start)


    @app.task(
        name="exclusive",
        max_attempts=1,
        limits=[Concurrency({CONCURRENCY_M}, retry_after=0.2)],
    )
    def exclusive(n):
        start = time.time()
        time.sleep(0.4)
        note("exclusive", start)
    """
)


def start_worker(tmp_path: Path, db: Path, log: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "RATE_TEST_LOG": str(log),
    }
    command = [
        sys.executable, "-m", "conveyor", "--app", "ratelimit_app:app",
        "--store", f"sqlite:///{db}", "worker", "-c", "2",
        "--lease-seconds", "5", "--heartbeat-interval", "0.5", "--rescue-interval", "1",
        "--poll-interval", "0.1", "--grace", "10",
    ]  # fmt: skip
    with out.open("ab") as output:
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end and a start at the same time do not
    overlap)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_two_worker_processes_hold_the_global_limits(tmp_path: Path) -> None:
    (tmp_path / "ratelimit_app.py").write_text(APP_MODULE)
    db, log = tmp_path / "jobs.db", tmp_path / "runs.log"
    app = App(settings=AppSettings(store=f"sqlite:///{db}"))
    app.store.migrate()
    # stand-ins with the same names and signatures: this process only enqueues
    limited = app.task(name="limited")(lambda n: None)
    exclusive = app.task(name="exclusive")(lambda n: None)
    ids = {exclusive.enqueue(n).id: "exclusive" for n in range(CONCURRENT_JOBS)}
    ids.update({limited.enqueue(n).id: "limited" for n in range(RATE_JOBS)})

    outputs = [tmp_path / f"worker{i}.out" for i in range(2)]
    procs = [start_worker(tmp_path, db, log, out) for out in outputs]
    try:
        deadline = time.monotonic() + 60
        while True:
            states = Counter(app.get_job(job_id).state for job_id in ids)
            if states[JobState.COMPLETED] == len(ids):
                break
            assert not states[JobState.FAILED] and not states[JobState.CANCELLED], states
            for proc, out in zip(procs, outputs, strict=True):
                assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, f"jobs not done in time: {states}"
            time.sleep(0.1)
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, out in zip(procs, outputs, strict=True):
            assert proc.wait(30) == 0, out.read_text(errors="replace")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    runs = [line.split() for line in log.read_text().splitlines()]
    # every job ran exactly once (none lost, none run twice) and ended completed
    assert Counter(run[1] for run in runs) == Counter(list(ids))
    assert all(app.get_job(job_id).job.attempt == 1 for job_id in ids)
    assert all(ids[run[1]] == run[0] for run in runs)
    # both process trees did work (a handler runs in a child of its worker's supervisor)
    supervisors = {proc.pid for proc in procs}
    assert {int(run[3]) for run in runs} == supervisors

    # rate: the store grants a start at most RATE_N times in any window of RATE_PER
    # seconds, but a handler reads time.time() a moment after its grant (decoding, the
    # middleware, the thread switch). Two starts RATE_N grants apart are therefore at
    # least RATE_PER minus the difference of those two delays apart; a window 50 ms
    # shorter than the period absorbs that (the delays are about a millisecond).
    starts = sorted(float(run[4]) for run in runs if run[0] == "limited")
    window = RATE_PER - 0.05
    busiest = max(sum(1 for t in starts if s <= t < s + window) for s in starts)
    assert busiest <= RATE_N, starts
    assert starts[-1] - starts[0] >= (RATE_JOBS // RATE_N - 1) * window

    # concurrency: a handler's recorded interval lies inside the time it held its slot
    # (taken before the start, given back after the end), so no tolerance is needed.
    intervals = [(float(run[4]), float(run[5])) for run in runs if run[0] == "exclusive"]
    assert max_overlap(intervals) <= CONCURRENCY_M, intervals

    # the limits were actually exercised: jobs over them were deferred (not failed)
    sources = Counter(d.source for job_id in ids for d in app.get_job(job_id).decisions)
    assert sources["rate_limit"] > 0, sources
    assert set(sources) <= {"rate_limit", "concurrency"}, sources
    app.close()
