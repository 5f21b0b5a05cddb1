"""Re-runs after a crash (issue 10, defect 6), with real processes: a ``conveyor worker
-c 2 --prefetch 100`` tree on SQLite is killed with SIGKILL mid-run, a second worker
finishes the queue, and every run left an effect record. Runs beyond one per job are the
price of the crash: the jobs running at the kill, plus those finished but not yet
acknowledged — at most ``ack_flush_interval`` worth per child, not a whole batch."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import App, JobState
from conveyor.worker.consumer import FLUSH_STRETCH

pytestmark = pytest.mark.slow

CONCURRENCY = 2
PREFETCH = 100
JOBS = 600
KILL_AFTER = 370
"""Effect records seen before the tree is killed: deep into each child's second batch."""
INTERVAL = 0.005

APP_SOURCE = textwrap.dedent(
    '''
    """Each run appends its job's number to effects.log before doing its work."""

    import os
    import time
    from pathlib import Path

    from conveyor import App

    HERE = Path(__file__).parent
    app = App("sqlite:///" + str(HERE / "jobs.db"))


    @app.task(name="fx.effect", max_attempts=10)
    def effect(n, seconds):
        fd = os.open(HERE / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{n}\\n".encode())
        finally:
            os.close(fd)
        time.sleep(seconds)
    '''
)

TIMING = (
    "--lease-seconds",
    "2",
    "--heartbeat-interval",
    "0.5",
    "--rescue-interval",
    "0.5",
    "--poll-interval",
    "0.2",
)


def conveyor(path: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -m conveyor --app fx_app ARGS`` in its own session (a killable tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    with (path / "worker.err").open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "--app", "fx_app", *args],
            cwd=path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def effects(path: Path) -> list[int]:
    log = path / "effects.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def load_app(source: Path) -> App:
    """The App of the module the workers load, for enqueueing and reading jobs here."""
    spec = importlib.util.spec_from_file_location(f"fx_app_{os.getpid()}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: App = module.app
    return app


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("seconds", [0.01, 0.001], ids=["10ms", "1ms"])
def test_sigkill_of_a_tree_re_runs_few_finished_jobs(tmp_path: Path, seconds: float) -> None:
    # per child: the job running at the kill, one being written, and those finished
    # within the ack window (the interval, stretched up to 4x when writes are slow)
    bound = (2 + round(FLUSH_STRETCH * INTERVAL / seconds)) * CONCURRENCY
    (tmp_path / "fx_app.py").write_text(APP_SOURCE, encoding="utf-8")
    app = load_app(tmp_path / "fx_app.py")
    app.store.migrate()
    ids = [app.enqueue("fx.effect", (n, seconds)).id for n in range(JOBS)]

    tree = conveyor(
        tmp_path, "worker", "-c", str(CONCURRENCY), "--prefetch", str(PREFETCH), *TIMING
    )
    try:
        wait_for(lambda: len(effects(tmp_path)) >= KILL_AFTER, "the first runs", 60)
    finally:
        kill_tree(tree)
    at_kill = len(effects(tmp_path))
    assert at_kill < JOBS, "the tree finished before it was killed; kill earlier"

    rest = conveyor(tmp_path, "worker", "--solo", "--burst", *TIMING)
    try:
        assert rest.wait(timeout=120) == 0, (tmp_path / "worker.err").read_text()
    finally:
        kill_tree(rest)

    states = {app.get_job(job_id).state for job_id in ids}
    assert states == {JobState.COMPLETED}
    runs = effects(tmp_path)
    assert sorted(set(runs)) == list(range(JOBS))
    extra = len(runs) - JOBS
    print(f"{seconds * 1000:g} ms jobs: {extra} extra runs after the kill (bound {bound})")
    assert extra <= bound
    app.close()
