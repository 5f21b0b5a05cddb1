"""The fault suite: every test is marked ``faults``; the slow ones also ``faults_full``.

A plain ``pytest`` run (``make test``) deselects ``faults_full`` (reported as deselected,
never silently skipped) and runs the quick subset; ``make faults`` (``-m faults``) runs
all. Each scenario's table row is printed at the end, and written to ``$FAULTS_TABLE``
when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .checker import Report
from .harness import Cluster

REPORTS = pytest.StashKey[list[Report]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORTS] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the suite ``faults``; without ``-m``, keep ``faults_full`` out of the run."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(item.path).parents]
    for item in ours:
        item.add_marker(pytest.mark.faults)
        item.add_marker(pytest.mark.slow)
    if config.option.markexpr:
        return
    slow = [item for item in ours if item.get_closest_marker("faults_full")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture
def record_report(request: pytest.FixtureRequest) -> Iterator[list[Report]]:
    """Reports a scenario adds here join the table."""
    reports: list[Report] = []
    yield reports
    request.config.stash[REPORTS].extend(reports)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = terminalreporter.config.stash.get(REPORTS, [])
    if not reports:
        return
    table = "\n".join([Report.HEADER, *(r.row() for r in reports)])
    terminalreporter.write_sep("=", "fault table")
    terminalreporter.write_line(table)
    destination = os.environ.get("FAULTS_TABLE")
    if destination:
        Path(destination).write_text(table + "\n")


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[list[Cluster]]:
    """Clusters a scenario starts; every worker tree is killed afterwards."""
    clusters: list[Cluster] = []
    yield clusters
    for cluster in clusters:
        cluster.close()
