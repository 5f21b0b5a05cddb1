"""One clock for leases: a host whose clock is off cannot rescue healthy jobs elsewhere.

Issue 10, defect 2: ``App.store`` handed the app's (local) clock to PostgreSQL and
Redis, replacing their server clock; a worker an hour ahead then rescued another
worker's healthy jobs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor import App
from conveyor.clock import SystemClock
from conveyor.config import AppSettings
from conveyor.maintenance.rescuer import Rescuer
from conveyor.stores.base import ClaimParams, Store
from conveyor.stores.server_clock import ServerClock

from .support import new_job


class SkewedClock(SystemClock):
    """This host's clock, ``skew`` seconds off (a host whose NTP is broken)."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def now(self) -> float:
        return time.time() + self.skew


@pytest.mark.parametrize("server", ["postgres_dsn", "redis_url"])
def test_a_host_an_hour_ahead_does_not_rescue_healthy_jobs(
    server: str, request: pytest.FixtureRequest
) -> None:
    dsn: str = request.getfixturevalue(server)
    healthy = App(dsn, settings=AppSettings(store=dsn))
    ahead = App(dsn, settings=AppSettings(store=dsn), clock=SkewedClock(3600.0))
    try:
        healthy.store.enqueue([new_job(queue="q") for _ in range(4)])
        leases = healthy.store.claim(
            ClaimParams(queues=["q"], worker_id="healthy", limit=4, lease_for=30.0)
        )
        assert len(leases) == 4

        rescued = Rescuer(ahead.store).run_once()
        assert (rescued.retried, rescued.failed) == ([], [])
        assert isinstance(ahead.store.clock, ServerClock)  # not the app's skewed clock
        assert ahead.clock.now() - time.time() == pytest.approx(3600.0, abs=1.0)
        assert ahead.store.now() == pytest.approx(time.time(), abs=2.0)  # same host here
        lost = healthy.store.heartbeat(leases, extend=30.0).lost
        assert lost == []
    finally:
        healthy.close()
        ahead.close()


def test_an_app_without_a_clock_reads_the_servers(postgres_dsn: str) -> None:
    app = App(postgres_dsn, settings=AppSettings(store=postgres_dsn))
    try:
        assert app.clock is app.store.clock
        assert isinstance(app.clock, ServerClock)
    finally:
        app.close()


def test_a_local_store_opened_from_a_dsn_takes_the_apps_clock() -> None:
    clock = SkewedClock(-60.0)
    app = App("memory://", settings=AppSettings(store="memory://"), clock=clock)
    assert app.store.clock is clock
    assert app.clock is clock


def test_the_offset_warning_threshold_comes_from_the_settings(redis_url: str) -> None:
    settings = AppSettings(store=redis_url, clock_offset_warning=2.5)
    app = App(redis_url, settings=settings)
    try:
        clock = app.store.clock
        assert isinstance(clock, ServerClock) and clock.warn_above == 2.5
    finally:
        app.close()


def test_a_threshold_that_is_not_positive_is_refused() -> None:
    from conveyor.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="clock_offset_warning: must be greater than 0"):
        AppSettings(clock_offset_warning=0.0)


def test_a_node_reports_its_offset_only_against_a_server_clock(
    redis_url: str, tmp_path: Path
) -> None:
    from conveyor.stores import open_store
    from conveyor.stores.server_clock import clock_offset

    shared = open_store(redis_url)
    local = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        assert clock_offset(shared.clock) is None  # not measured yet
        shared.now()
        offset = clock_offset(shared.clock)
        assert offset is not None and abs(offset) < 1.0  # same host here
        assert clock_offset(local.clock) is None
    finally:
        shared.close()
        local.close()


def _wrongly_measured_store(dsn: str) -> Store:
    """A store whose server-clock reading is an hour ahead (a bad measurement)."""
    from conveyor.stores import open_store

    store = open_store(dsn)
    clock = store.clock
    assert isinstance(clock, ServerClock)
    store.clock = ServerClock(lambda: time.time() + 3600.0, refresh_every=3600.0)
    return store


@pytest.mark.parametrize("server", ["postgres_dsn", "redis_url"])
def test_the_server_itself_decides_which_leases_expired(
    server: str, request: pytest.FixtureRequest
) -> None:
    from conveyor.stores import open_store

    dsn: str = request.getfixturevalue(server)
    healthy, wrong = open_store(dsn), _wrongly_measured_store(dsn)
    try:
        healthy.enqueue([new_job(queue="q"), new_job(queue="short")])
        held = healthy.claim(ClaimParams(queues=["q"], worker_id="w", lease_for=30.0))
        short = healthy.claim(ClaimParams(queues=["short"], worker_id="w", lease_for=0.05))
        time.sleep(0.2)  # the short lease passes by the server's clock (a real server)
        rescued = Rescuer(wrong).run_once()
        assert rescued.retried == [short[0].job_id]  # not the healthy one
        assert healthy.heartbeat(held, extend=30.0).lost == []
    finally:
        healthy.close()
        wrong.close()
