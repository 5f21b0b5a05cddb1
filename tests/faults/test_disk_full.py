"""SQLite on a full disk (a 16 MiB tmpfs): the worker survives the writes it cannot make
and every job completes once space is back (RELIABILITY.md §7.0, "Disk full")."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .checker import Report
from .harness import CHAOS, Cluster

pytestmark = pytest.mark.faults_full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, or a skip saying why there is none."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk is full; return it (deleting it frees the space)."""
    filler = directory / "filler"
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as out:
        while True:  # the last few bytes too
            out.write(b"\0" * 512)
    return filler


def test_sqlite_on_a_full_disk(
    small_disk: Path,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    timing = dataclasses.replace(CHAOS, handler=0.02)
    cluster = Cluster(f"sqlite:///{small_disk / 'faults.db'}", tmp_path / "cluster", timing)
    cluster_factory.append(cluster)
    cluster.enqueue_work(150, 0.02)
    proc = cluster.start("-c", "2", "--prefetch", "5")
    cluster.wait_for(lambda: cluster.runs() >= 30, 60, "the first runs")
    filler = _fill(small_disk)
    time.sleep(3.0)  # the workers meet the full disk for a while

    def free_the_space() -> None:
        os.unlink(filler)

    cluster.fault(free_the_space)
    cluster.drain()
    report = cluster.report("SQLite on a full disk, then space freed", "sqlite")
    record_report.append(report)
    report.assert_guarantees()
    assert proc.poll() is None, cluster.log_tail()
