"""G9 "poison means it ran", with real process trees on the real drivers.

The issue's reproduction: ``conveyor worker -c 1 --prefetch 5``, a job at priority 10
whose handler SIGKILLs its own process, and four normal jobs claimed with it. (The issue
used three crashers and two normal jobs; one crasher keeps the same batch shape while the
supervisor's restart back-off, which grows until a child completes a job, stays at
0.5 + 1 + 2 s instead of reaching its 30 s cap.) Every handler appends an
effect record (job id and attempt) before doing anything else, so the test knows what
really started. The normal jobs must end completed after one run each; the crashers end
in the DLQ as ``poison``, every attempt of theirs having really started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import App, FailureReason, JobState
from conveyor.config import AppSettings

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, signal
    from conveyor import App, current_job
    from conveyor.retry import Fixed

    app = App()

    def effect(path):
        job = current_job()
        with open(path, "a") as out:
            out.write(f"{job.job_id} {job.attempt}\\n")

    @app.task(name="crasher", priority=10, max_attempts=3, retry=Fixed(0.05))
    def crasher(path):
        effect(path)
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task(name="normal")
    def normal(path):
        effect(path)
        return "ok"
    """
)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    fixture = "postgres_dsn" if request.param == "postgres" else "redis_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def tree(tmp_path: Path, store_url: str) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "poison_app.py").write_text(APP)
    command = [
        sys.executable, "-m", "conveyor", "--app", "poison_app:app", "--store", store_url,
        "worker", "-c", "1", "--prefetch", "5",
        "--heartbeat-interval", "0.25", "--lease-seconds", "2", "--rescue-interval", "0.5",
        "--poll-interval", "0.2",
    ]  # fmt: skip
    with (tmp_path / "worker.log").open("ab") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_jobs_claimed_with_a_crasher_are_released_not_dead_lettered(
    tmp_path: Path, store_url: str, tree: subprocess.Popen[bytes]
) -> None:
    app = App(settings=AppSettings(store=store_url))
    for name in ("crasher", "normal"):
        app.task(name=name)(lambda path: None)
    effects = tmp_path / "effects"
    crashers = [
        app.get_task("crasher").with_options(priority=10).enqueue(str(effects)).id for _ in range(1)
    ]
    normals = [app.get_task("normal").enqueue(str(effects)).id for _ in range(4)]
    try:
        deadline = time.monotonic() + 90
        while not all(app.get_job(i).job.is_terminal for i in crashers + normals):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.05)
        runs = Counter(line.split()[0] for line in effects.read_text().splitlines())
        started = {tuple(line.split()) for line in effects.read_text().splitlines()}
        for job_id in normals:
            info = app.get_job(job_id)
            assert info.state is JobState.COMPLETED, (info.state, info.failure_reason, info.errors)
            assert runs[job_id] == 1
            assert info.job.attempt == 1 and not info.errors
        for job_id in crashers:
            info = app.get_job(job_id)
            assert info.state is JobState.FAILED
            assert info.failure_reason == FailureReason.POISON
            assert info.job.attempt == 3 and runs[job_id] == 3
            assert [e.type for e in info.errors] == ["WorkerLost"] * 3
            assert all((job_id, str(e.attempt)) in started for e in info.errors)
    finally:
        app.close()
