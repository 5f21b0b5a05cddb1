"""The fault suite's harness: real worker processes running ``faults_app``, the faults
injected into them, and the drain that collects the state the checker judges."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conveyor import App, Job
from conveyor.config import AppSettings
from conveyor.errors import StoreUnavailable

from .checker import Report, Timing, check, read_effects, stuck_jobs

APP_SOURCE = Path(__file__).with_name("faults_app.py")

CHAOS = Timing(lease=3.0, rescue_interval=1.0, poll_interval=0.2)
"""RELIABILITY.md §7.0's chaos parameters (heartbeat 0.5 s)."""


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux ``/proc``)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except FileNotFoundError:
        return []


def is_worker_child(pid: int) -> bool:
    """True for a prefork worker child (not the scheduler child of ``--with-scheduler``)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return b"scheduler" not in cmdline


@dataclass
class Cluster:
    """Worker processes on one store, the jobs a scenario enqueued, and the effect log."""

    dsn: str
    directory: Path
    timing: Timing = CHAOS
    app: App = field(init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    corrupted: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    fault_at: float | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(APP_SOURCE, self.directory / "faults_app.py")
        self.app = App(settings=AppSettings(store=self.dsn))
        self.app.store.migrate()  # as a deployment runs `conveyor migrate` first
        self.work = self.app.task(name="work", max_attempts=5)(_never_run)
        self.crash = self.app.task(name="crash", max_attempts=5)(_never_run)
        self.hog = self.app.task(name="hog", max_attempts=2)(_never_run)

    @property
    def effects_path(self) -> Path:
        """Where the handlers append their effect records."""
        return self.directory / "effects.jsonl"

    @property
    def log_path(self) -> Path:
        """The workers' combined output (shown when a scenario fails)."""
        return self.directory / "worker.log"

    def enqueue_work(self, count: int, seconds: float = 0.0, priority: int = 0) -> list[str]:
        """Enqueue ``count`` normal jobs; their ids count as acknowledged."""
        task = self.work.with_options(priority=priority)
        ids = [h.id for h in task.enqueue_many([(i, seconds) for i in range(count)])]
        self.acknowledged += ids
        return ids

    def enqueue_crashers(self, count: int, priority: int = 10) -> list[str]:
        """Enqueue jobs that kill their own process every attempt."""
        task = self.crash.with_options(priority=priority)
        ids = [h.id for h in task.enqueue_many([() for _ in range(count)])]
        self.acknowledged += ids
        return ids

    def enqueue_hogs(self, count: int, priority: int = 10) -> list[str]:
        """Enqueue jobs that climb past their memory limit every attempt."""
        task = self.hog.with_options(priority=priority)
        ids = [h.id for h in task.enqueue_many([() for _ in range(count)])]
        self.acknowledged += ids
        return ids

    def start(
        self, *args: str, clock_skew: float = 0.0, clock_step: str = "0:0"
    ) -> subprocess.Popen[bytes]:
        """Start a worker (a supervisor unless ``--solo`` is given) with the chaos timing."""
        path = os.pathsep.join(filter(None, [str(self.directory), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "CONVEYOR_STORE": self.dsn}
        env |= {"FAULTS_EFFECTS": str(self.effects_path), "FAULTS_CLOCK_SKEW": str(clock_skew)}
        env["FAULTS_CLOCK_STEP"] = clock_step
        command = [sys.executable, "-m", "conveyor", "--app", "faults_app:app", "worker"]
        command += ["--lease-seconds", str(self.timing.lease), "--heartbeat-interval", "0.5"]
        command += ["--rescue-interval", str(self.timing.rescue_interval)]
        command += ["--poll-interval", str(self.timing.poll_interval), *args]
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                command,
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def jobs(self) -> dict[str, Job | None]:
        """Every acknowledged job's stored state (None: not found)."""
        found: dict[str, Job | None] = dict.fromkeys(self.acknowledged)
        for start in range(0, len(self.acknowledged), 500):
            for job in self.app.store.get_many(self.acknowledged[start : start + 500]):
                found[job.id] = job
        return found

    def runs(self) -> int:
        """How many runs have started so far."""
        return sum(1 for e in read_effects(self.effects_path) if e.event == "start")

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` (sampling stuck jobs meanwhile) until it holds."""
        deadline = time.monotonic() + timeout
        while not _holds(check):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")
            time.sleep(0.1)

    def sample_stuck(self) -> None:
        """One stuck sample of every acknowledged job (RELIABILITY.md §7.0)."""
        jobs = [job for job in self.jobs().values() if job is not None]
        self.stuck |= stuck_jobs(jobs, self.app.store.now(), self.timing)

    def fault(self, inject: Callable[[], None]) -> None:
        """Inject a fault and note when it ended (a kill is instant; a restart ends when
        the server is back): recovery is measured from there."""
        inject()
        self.fault_at = time.time()

    def drain(self, timeout: float = 90.0) -> None:
        """Wait until every acknowledged job is terminal, sampling stuck jobs."""

        def all_terminal() -> bool:
            self.sample_stuck()
            return all(job is not None and job.is_terminal for job in self.jobs().values())

        self.wait_for(all_terminal, timeout, "every job to end")

    def report(self, scenario: str, store: str) -> Report:
        """Judge the run (after :meth:`drain`)."""
        return check(
            scenario,
            store,
            self.acknowledged,
            self.jobs(),
            read_effects(self.effects_path),
            self.timing,
            stuck=self.stuck,
            fault_at=self.fault_at,
            corrupted=frozenset(self.corrupted),
        )

    def kill_tree(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 of a whole worker tree (its session: supervisor and children)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def log_tail(self) -> str:
        """The end of the workers' output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-4000:]

    def close(self) -> None:
        """Stop every worker tree this cluster started, and close the app."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self.app.close()


def _holds(check: Callable[[], bool]) -> bool:
    """``check()``, False while the server it reads is down (a fault the test injected)."""
    try:
        return check()
    except StoreUnavailable:
        return False


def _never_run(*_args: object) -> None:
    """The test process only enqueues; the workers run ``faults_app``'s handlers."""
    raise AssertionError("the test process never runs a job")
