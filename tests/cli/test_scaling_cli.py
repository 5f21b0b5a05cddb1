"""``conveyor scaling``: the exported autoscaling signal."""

from __future__ import annotations

import json

from conveyor import admin

from .conftest import Project


def test_scaling_signal_counts_the_backlog(project: Project) -> None:
    for i in range(5):
        project.enqueue("t.add", i, i)
    result = project.cli("scaling", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pending"] == 5 and data["processing"] == 0
    assert data["suggested_workers"] == 5
    halved = json.loads(project.cli("scaling", "--jobs-per-worker", "2", "-o", "json").stdout)
    assert halved["suggested_workers"] == 3
    text = project.cli("scaling").stdout
    assert "suggested workers 5" in text


def test_scaling_signal_for_named_queues_only(project: Project) -> None:
    project.enqueue("t.add", 1, 1)
    store = project.app.store
    signal = admin.scaling_signal(store, ["nothing-here"], store.now())
    assert signal.pending == 0 and signal.suggested_workers == 0
    assert signal.queues == ("nothing-here",)
