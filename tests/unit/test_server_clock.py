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
