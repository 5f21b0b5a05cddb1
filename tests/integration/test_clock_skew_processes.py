"""A real worker whose host clock is an hour ahead (a ``time.time`` shim in its app) runs
next to a healthy holder of leases on PostgreSQL and Redis: it rescues none of them,
warns about its clock, and reports the offset in the node registry (issue 10, defect 2).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor import App
from conveyor.config import AppSettings
from conveyor.stores.base import ClaimParams

from ..stores.support import new_job

pytestmark = pytest.mark.slow

SKEWED_APP = textwrap.dedent(
    """
    import time

    _real_time = time.time
    time.time = lambda: _real_time() + 3600.0  # this host's clock is an hour ahead

    from conveyor import App

    app = App()

    @app.task(name="noop")
    def noop():
        return None
    """
)


def _start_skewed_worker(tmp_path: Path, dsn: str) -> subprocess.Popen[bytes]:
    (tmp_path / "skewed_app.py").write_text(SKEWED_APP)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CONVEYOR_STORE": dsn}
    command = [sys.executable, "-m", "conveyor", "--app", "skewed_app:app", "worker"]
    command += ["--queues", "elsewhere", "--lease-seconds", "4", "--heartbeat-interval", "1"]
    command += ["--rescue-interval", "0.5", "--poll-interval", "0.2"]
    with (tmp_path / "worker.log").open("ab") as log:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)


@pytest.mark.parametrize("server", ["postgres_dsn", "redis_url"])
def test_a_worker_an_hour_ahead_rescues_no_healthy_job(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn: str = request.getfixturevalue(server)
    app = App(dsn, settings=AppSettings(store=dsn))
    store = app.store
    store.enqueue([new_job(queue="held") for _ in range(3)])
    leases = store.claim(ClaimParams(queues=["held"], worker_id="healthy", limit=3, lease_for=4))
    assert len(leases) == 3
    proc = _start_skewed_worker(tmp_path, dsn)
    try:
        deadline = time.monotonic() + 60
        while not store.list_nodes():
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the skewed worker never registered"
            time.sleep(0.1)
        for _ in range(8):  # 4 s: many rescue passes of the skewed worker
            time.sleep(0.5)
            assert store.heartbeat(leases, extend=4).lost == []
        [node] = store.list_nodes()
        assert node.clock_offset == pytest.approx(3600.0, abs=5.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        app.close()
    log = (tmp_path / "worker.log").read_text()
    assert re.search(r"clock is \+(3599|3600)\.\d+ s off the store server's", log), log
