"""The fault suite's app, run by real worker processes (``--app faults_app:app``).

Every handler appends an effect record before doing anything else (one ``O_APPEND``
write, atomic for a line this short), so a run that dies a moment later is still
counted. A ``time.time`` shim moves this process's wall clock when the suite asks
(a skewed host, or a step at a given moment).
"""

from __future__ import annotations

import json
import os
import signal
import time

_real_time = time.time
_started = time.monotonic()
_skew = float(os.environ.get("FAULTS_CLOCK_SKEW", "0"))
_step_after, _, _step = os.environ.get("FAULTS_CLOCK_STEP", "0:0").partition(":")


def _shifted_time() -> float:
    """This host's wall clock: skewed, and stepped once the given time has passed."""
    stepped = float(_step) if time.monotonic() - _started >= float(_step_after) else 0.0
    return _real_time() + _skew + stepped


if _skew or float(_step):
    time.time = _shifted_time

from conveyor import App, JobState, current_job  # noqa: E402  (after the clock shim)
from conveyor.retry import Fixed  # noqa: E402

EFFECTS = os.environ["FAULTS_EFFECTS"]

app = App()


def _begin() -> None:
    """The effect record first; then whether this job was already acknowledged (a run
    of a completed job would acknowledge it twice)."""
    _record("start")
    stored = app.store.get(current_job().job_id)
    if stored is not None and stored.state is JobState.COMPLETED:
        _record("after_ack")


def _record(event: str) -> None:
    ctx = current_job()
    line = {"event": event, "job": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid()}
    line["t"] = _real_time()
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


@app.task(name="work", max_attempts=5)
def work(i: int, seconds: float = 0.0) -> int:
    """A normal job: record, take ``seconds``, record the end."""
    _begin()
    time.sleep(seconds)
    _record("end")
    return i


@app.task(name="crash", max_attempts=3, retry=Fixed(0.05))
def crash() -> None:
    """A job that kills its own process (kill -9), every attempt, and is back at once
    (so its batch-mates meet it again: issue 10, defect 1)."""
    _record("start")
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="hog", max_attempts=2, retry=Fixed(0.05), max_memory="120MiB")
def hog() -> None:
    """A job that climbs to about 300 MB (touched, 10 MiB at a time) and would free it
    at the end: the memory guard must stop it during the run (issue 10, defect 7)."""
    _record("start")
    chunks = []
    for _ in range(30):
        chunks.append(bytearray(10 << 20))
        time.sleep(0.02)
    chunks.clear()
    _record("end")


@app.periodic("every second", name="beat", catch_up="all")
@app.task(name="beat")
def beat() -> None:
    """A fire time of the schedule (only a worker run ``--with-scheduler`` fires it)."""
    _begin()
    _record("end")
