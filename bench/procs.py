"""Worker processes: spawn in their own session, wait for records, read RSS, kill the tree.

Every process the harness starts carries ``BENCH_RUN_ID`` in its environment, so a final
sweep can find and kill anything of this run that escaped its process group (RQ's
work-horse, for one, calls ``setsid``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import recorder

RUN_ID = f"{os.getpid()}-{time.time_ns()}"
RUN_MARKER = "BENCH_RUN_ID"


class WorkerFailed(RuntimeError):
    """A worker exited or stalled before its jobs were done."""


@dataclass
class Workers:
    """One launch: one or more worker processes, each in its own session."""

    procs: list[subprocess.Popen[bytes]]
    log: Path
    spawned_at: float
    label: str
    started: list[float] = field(default_factory=list)

    def alive(self) -> bool:
        """True while every launched process runs."""
        return all(p.poll() is None for p in self.procs)

    def log_tail(self, lines: int = 6) -> str:
        """The last lines of the workers' combined output."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no output)"
        return " | ".join(line.strip() for line in text[-lines:]) or "(no output)"

    def tree(self) -> list[psutil.Process]:
        """Every live process of this launch (the launched ones and their descendants)."""
        found: dict[int, psutil.Process] = {}
        for proc in self.procs:
            try:
                top = psutil.Process(proc.pid)
                found[top.pid] = top
                for child in top.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def rss(self) -> list[dict[str, object]]:
        """RSS of each live process of the launch, largest first."""
        rows = []
        for proc in self.tree():
            try:
                rows.append(
                    {
                        "pid": proc.pid,
                        "rss_bytes": proc.memory_info().rss,
                        "cmd": " ".join(proc.cmdline()[:6]),
                    }
                )
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        rows.sort(key=lambda row: -int(str(row["rss_bytes"])))
        return rows

    def stop(self, grace: float = 3.0) -> None:
        """TERM every process group and descendant, wait ``grace`` s, then KILL the rest."""
        members = self.tree()
        for proc in self.procs:
            _signal_group(proc.pid, signal.SIGTERM)
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        _, survivors = psutil.wait_procs(members, timeout=max(deadline - time.monotonic(), 0.01))
        for proc in self.procs:
            _signal_group(proc.pid, signal.SIGKILL)
        for member in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        for proc in self.procs:
            proc.wait()
        psutil.wait_procs(survivors, timeout=5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def worker_env(extra: dict[str, str], record: str) -> dict[str, str]:
    """The environment of a worker: ours, the repo on PYTHONPATH, the record file, the marker."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    env = dict(os.environ)
    env.update(extra)
    env.update(
        {
            "PYTHONPATH": root + (os.pathsep + path if path else ""),
            "BENCH_RECORD": record,
            RUN_MARKER: RUN_ID,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def spawn(commands: Sequence[Sequence[str]], env: dict[str, str], log: Path, label: str) -> Workers:
    """Start each command in a new session (its own process group), output to ``log``."""
    root = Path(__file__).resolve().parent.parent
    procs: list[subprocess.Popen[bytes]] = []
    spawned_at = time.time()
    with open(log, "ab") as out:
        try:
            for cmd in commands:
                procs.append(
                    subprocess.Popen(
                        list(cmd),
                        cwd=root,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        except BaseException:
            Workers(procs, log, spawned_at, label).stop(grace=0.5)
            raise
    return Workers(procs, log, spawned_at, label)


@contextlib.contextmanager
def running(
    commands: Sequence[Sequence[str]], env: dict[str, str], log: Path, label: str
) -> Iterator[Workers]:
    """Spawn workers and always stop them (process groups and descendants) on the way out."""
    workers = spawn(commands, env, log, label)
    try:
        yield workers
    finally:
        workers.stop()


def wait_for(record: str, n: int, workers: Workers, deadline: float) -> int:
    """Wait until ``record`` holds ``n`` lines or ``deadline`` (monotonic) passes.

    Raises:
        WorkerFailed: a worker process exited first.
    """
    done = recorder.count(record)
    while done < n and time.monotonic() < deadline:
        if not workers.alive():
            done = recorder.count(record)
            if done >= n:
                break
            raise WorkerFailed(
                f"{workers.label} exited after {done}/{n} jobs: {workers.log_tail()}"
            )
        time.sleep(0.002 if n - done < 50 else 0.01)
        done = recorder.count(record)
    return done


def sweep() -> list[int]:
    """Kill every process still carrying this run's marker (the safety net); their pids."""
    killed = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(RUN_MARKER) == RUN_ID:
                proc.kill()
                killed.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed
