"""SQLite leases and wall-clock steps (issue 10, defect 3).

A backward step of the wall clock must not keep a dead worker's jobs leased for the
length of the step: recovery takes at most lease + rescue interval.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.clock import FakeClock, SystemClock
from conveyor.maintenance.rescuer import Rescuer
from conveyor.stores.base import ClaimParams
from conveyor.stores.sqlite import SQLiteStore
from conveyor.stores.sqlite.lease_clock import NAMESPACE, read_boot_id

from .support import new_job

LEASE = 30.0
RESCUE_INTERVAL = 5.0


def _seconds_until_rescued(rescuer: Rescuer, clock: FakeClock, limit: float) -> float:
    """Run the rescuer every RESCUE_INTERVAL of fake time; seconds until it recovered jobs."""
    waited = 0.0
    while waited <= limit:
        clock.advance(RESCUE_INTERVAL)
        waited += RESCUE_INTERVAL
        if rescuer.run_once().retried:
            return waited
    return float("inf")


@pytest.mark.parametrize("step", [-3600.0, +3600.0])
def test_a_wall_clock_step_neither_delays_nor_hastens_recovery(tmp_path: Path, step: float) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    worker, survivor = SQLiteStore(path, clock=clock), SQLiteStore(path, clock=clock)
    try:
        worker.enqueue([new_job(queue="q") for _ in range(3)])
        leases = worker.claim(ClaimParams(queues=["q"], worker_id="w", limit=3, lease_for=LEASE))
        assert len(leases) == 3
        clock.step(step)  # the worker dies; the wall clock steps
        rescuer = Rescuer(survivor, retry_delay=0.0)
        assert rescuer.run_once().retried == []  # a step alone expires nothing
        waited = _seconds_until_rescued(rescuer, clock, limit=2 * (LEASE + RESCUE_INTERVAL))
        assert LEASE <= waited <= LEASE + RESCUE_INTERVAL
    finally:
        worker.close()
        survivor.close()


def test_due_times_stay_on_the_wall_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "jobs.db", clock=clock)
    try:
        store.enqueue([new_job(queue="q", run_at=clock.now() + 60.0)])
        clock.step(+120.0)  # the wall clock passes the due time: the schedule is wall time
        store.stage_due()
        assert len(store.claim(ClaimParams(queues=["q"], worker_id="w"))) == 1
    finally:
        store.close()


def test_after_a_backward_step_due_times_wait_at_most_the_step_never_run_early(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "jobs.db", clock=clock)
    try:
        store.enqueue([new_job(queue="q", run_at=clock.now() + 60.0)])
        clock.step(-600.0)
        clock.advance(60.0)
        store.stage_due()
        assert store.claim(ClaimParams(queues=["q"], worker_id="w")) == []  # not early
        clock.advance(600.0)  # the step's length later
        store.stage_due()
        assert len(store.claim(ClaimParams(queues=["q"], worker_id="w"))) == 1
    finally:
        store.close()


@pytest.mark.skipif(read_boot_id() is None, reason="the kernel publishes no boot id here")
def test_processes_of_one_boot_share_the_lease_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real second process claims; this one, its wall clock shimmed an hour back,
    recovers the dead claimer's job once the lease has passed."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(path, clock=SystemClock())
    try:
        store.enqueue([new_job(queue="q")])
        claimer = (
            "import sys\n"
            "from conveyor.stores.sqlite import SQLiteStore\n"
            "from conveyor.stores.base import ClaimParams\n"
            "s = SQLiteStore(sys.argv[1])\n"
            "got = s.claim(ClaimParams(queues=['q'], worker_id='dead', lease_for=0.2))\n"
            "sys.exit(0 if len(got) == 1 else 1)\n"
        )
        subprocess.run([sys.executable, "-c", claimer, str(path)], check=True, timeout=60)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() - 3600.0)
        time.sleep(0.3)
        assert Rescuer(store, retry_delay=0.0).run_once().retried != []
        bases = store.list_records(NAMESPACE)
        assert [r.key for r in bases] == [read_boot_id()]  # one base, taken by the claimer
    finally:
        store.close()
