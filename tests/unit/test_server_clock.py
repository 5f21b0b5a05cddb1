"""Reading the store server's clock through a measured offset."""

from __future__ import annotations

import time

import pytest

from conveyor.stores.server_clock import ServerClock


def test_now_follows_the_server_not_this_host() -> None:
    calls: list[float] = []

    def server_time() -> float:
        calls.append(1)
        return time.time() + 120.0  # the server is two minutes ahead of us

    clock = ServerClock(server_time, refresh_every=3600)
    assert clock.now() - time.time() == pytest.approx(120.0, abs=0.5)
    assert clock.now() - time.time() == pytest.approx(120.0, abs=0.5)
    assert len(calls) == 1  # measured once, then read locally
    assert clock.offset == pytest.approx(120.0, abs=0.5)


def test_offset_is_measured_again_after_the_refresh_period() -> None:
    offsets = iter([10.0, -5.0])
    clock = ServerClock(lambda: time.time() + next(offsets), refresh_every=0.0)
    first = clock.now() - time.time()
    second = clock.now() - time.time()
    assert first == pytest.approx(10.0, abs=0.5) and second == pytest.approx(-5.0, abs=0.5)


def test_an_unreachable_server_falls_back_to_the_local_clock() -> None:
    def broken() -> float:
        raise ConnectionError("down")

    clock = ServerClock(broken)
    assert clock.now() == pytest.approx(time.time(), abs=0.5)


def test_postgres_and_redis_stores_judge_time_by_their_server(
    postgres_dsn: str, redis_url: str
) -> None:
    from conveyor.stores import open_store

    for dsn in (postgres_dsn, redis_url):
        store = open_store(dsn)
        try:
            assert isinstance(store.clock, ServerClock)
            assert store.now() == pytest.approx(time.time(), abs=2.0)  # same host here
        finally:
            store.close()


class HostClocks:
    """This host's wall and monotonic clocks, moved by hand; the server's runs true."""

    def __init__(self) -> None:
        self.true = 1_700_000_000.0
        self.wall_error = 0.0
        self.mono_value = 500.0
        self.reads = 0

    def wall(self) -> float:
        return self.true + self.wall_error

    def mono(self) -> float:
        return self.mono_value

    def server(self) -> float:
        self.reads += 1
        return self.true

    def advance(self, seconds: float) -> None:
        self.true += seconds
        self.mono_value += seconds


def test_a_step_of_the_wall_clock_does_not_move_server_time_and_is_measured_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = HostClocks()
    clock = ServerClock(host.server, refresh_every=30.0, wall=host.wall, mono=host.mono)
    assert clock.now() == host.true and host.reads == 1
    host.advance(5.0)
    host.wall_error = 3600.0  # the wall clock jumps an hour ahead between refreshes
    with caplog.at_level("WARNING", logger="conveyor.stores"):
        assert clock.now() == host.true  # still the server's time
    assert host.reads == 2  # re-measured at once, not 30 s later
    assert clock.offset == pytest.approx(-3600.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("stepped by +3600.000 s" in m for m in messages)
    assert any("+3600.000 s off the store server's" in m for m in messages)
    host.advance(1.0)
    assert clock.now() == host.true and host.reads == 2  # no step since: no round trip


def test_the_offset_warning_threshold_is_a_setting(caplog: pytest.LogCaptureFixture) -> None:
    host = HostClocks()
    host.wall_error = -2.0
    with caplog.at_level("WARNING", logger="conveyor.stores"):
        ServerClock(host.server, warn_above=5.0, wall=host.wall, mono=host.mono).now()
        assert not caplog.records
        ServerClock(host.server, warn_above=1.0, wall=host.wall, mono=host.mono).now()
    assert "-2.000 s off" in caplog.records[0].getMessage()
    with pytest.raises(ValueError, match="warn_above must be a positive"):
        ServerClock(host.server, warn_above=0.0)
