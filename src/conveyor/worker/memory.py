"""Memory guarded while a job runs, not only after it.

A job that climbs to gigabytes and frees them before it returns is invisible to a
check made between jobs; under a memory cgroup the kernel kills it first. So a
:class:`MemoryWatch` thread samples the process's RSS every :data:`SAMPLE_EVERY`
seconds while a job runs (and sleeps otherwise). Past the job's limit it interrupts
the handler (like the soft timeout); if the handler does not stop within the grace,
the supervisor is asked to kill the process. Past the per-child limit the job may
finish, and the process is replaced right after it.

:class:`OomKills` reads the cgroup v2 ``memory.events`` counter so that a child
killed by ``SIGKILL`` can be named an out-of-memory kill when the kernel says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.sizes import MIB
from conveyor.worker.reporting import rss_bytes

log = logging.getLogger("conveyor.worker")

SAMPLE_EVERY = 0.1
"""Seconds between RSS samples while a job runs."""


@dataclass(frozen=True, slots=True)
class Breach:
    """A job passed its memory limit."""

    job_id: str
    rss: int
    limit: int

    def message(self, task: str) -> str:
        """The error message recorded on the job."""
        return (
            f"{task} used {self.rss / MIB:.0f} MiB, past its memory limit of "
            f"{self.limit / MIB:.0f} MiB; the job was stopped"
        )


class MemoryWatch:
    """Samples RSS on a daemon thread while a job is armed; cheap when nothing is.

    ``on_breach`` runs on the watch thread when a job passes its limit (the worker
    interrupts the handler), again on each sample until it returns True (the handler
    may not have been interruptible yet); ``on_stuck`` runs once when the handler is
    still running ``grace`` seconds after the breach (the worker asks the supervisor to
    kill the process).
    """

    def __init__(
        self,
        *,
        child_limit: int,
        grace: float,
        on_breach: Callable[[Breach], bool],
        on_stuck: Callable[[Breach], None],
        sample: Callable[[], int] = rss_bytes,
        interval: float = SAMPLE_EVERY,
    ) -> None:
        self.child_limit = child_limit
        self.grace = grace
        self.on_breach = on_breach
        self.on_stuck = on_stuck
        self.sample = sample
        self.interval = interval
        self.breach: Breach | None = None
        """The last job's breach (read by the executor to name the error)."""
        self.child_peak = 0
        """Highest RSS seen past the per-child limit (0: not past it)."""
        self._lock = threading.Lock()
        self._job: str | None = None
        self._limit = 0
        self._breached_at: float | None = None
        self._stuck_sent = False
        self._delivered = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, job_id: str, limit: int | None) -> None:
        """Watch the job now starting (``limit`` in bytes; ``None``: only the child's)."""
        with self._lock:
            self._job = job_id
            self._limit = limit or 0
            self.breach = None
            self._breached_at = None
            self._stuck_sent = False
            self._delivered = False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="conveyor-memory", daemon=True)
            self._thread.start()
        self._wake.set()

    def disarm(self) -> None:
        """The job's handler returned: stop sampling until the next one."""
        with self._lock:
            self._job = None
        self._wake.clear()

    def breach_of(self, job_id: str) -> Breach | None:
        """The breach of ``job_id``, if it passed its limit."""
        breach = self.breach
        return breach if breach is not None and breach.job_id == job_id else None

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def check(self) -> None:
        """One sample and its consequences (the thread calls this; tests call it directly)."""
        with self._lock:
            job, limit = self._job, self._limit
        if job is None:
            return
        rss = self.sample()
        if self.child_limit and rss > self.child_limit:
            self.child_peak = max(self.child_peak, rss)
        breach, stuck = self._judge(job, limit, rss)
        if breach is not None and self.on_breach(breach):
            with self._lock:
                self._delivered = self._job == job
        if stuck is not None:
            self.on_stuck(stuck)

    def _judge(self, job: str, limit: int, rss: int) -> tuple[Breach | None, Breach | None]:
        """(a breach to deliver, a breach whose grace ran out) for this sample."""
        now = time.monotonic()
        with self._lock:
            if self._job != job:
                return None, None
            if self.breach is None:
                if not limit or rss <= limit:
                    return None, None
                self.breach = Breach(job, rss, limit)
                self._breached_at = now
                return self.breach, None
            deliver = None if self._delivered else self.breach
            assert self._breached_at is not None
            if not self._stuck_sent and now - self._breached_at > self.grace:
                self._stuck_sent = True
                return deliver, self.breach
        return deliver, None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self.interval):
                return
            try:
                self.check()
            except Exception:
                log.exception("memory watch failed")


OOM_SUFFIX = " (out of memory: the kernel's OOM killer)"


CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_memory_events(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT
) -> Path | None:
    """The file holding this process's cgroup ``oom_kill`` counter, when one is readable:
    cgroup v2 ``memory.events``, else cgroup v1 ``memory.oom_control`` (also where a
    container mounts its own cgroup at the root of the hierarchy)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    v2_files: list[Path] = []
    v1_files: list[Path] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        relative = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            v2 = [root / relative, root / "unified" / relative]
            v2_files += [base / "memory.events" for base in v2]
        elif "memory" in controllers.split(","):
            v1 = root / "memory"
            v1_files += [v1 / relative / "memory.oom_control", v1 / "memory.oom_control"]
    return next((c for c in v2_files + v1_files if c.is_file()), None)


class OomKills:
    """Tells whether the kernel's OOM killer struck since the last look.

    Reads ``oom_kill`` from a cgroup v2 ``memory.events`` file (the supervisor's own
    cgroup, which its children share unless placed elsewhere); without one it never
    claims an OOM kill."""

    def __init__(self, events: Path | None) -> None:
        self.events = events
        self._seen = 0
        self._seen = self._count()

    def _count(self) -> int:
        if self.events is None:
            return 0
        try:
            for line in self.events.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return self._seen
        return 0

    def rose(self) -> bool:
        """True when the counter grew since the last call (or since creation)."""
        count = self._count()
        rose = count > self._seen
        self._seen = count
        return rose
