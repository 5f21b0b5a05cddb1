"""Backlog prediction from measured rates."""

from __future__ import annotations

import pytest

from conveyor.analysis.backlog import forecast


def test_a_shrinking_queue_drains_at_the_net_rate() -> None:
    # 600 arrived and 1,200 served in 10 minutes: net 1 job/s, 300 waiting -> 300 s
    result = forecast("q", depth=300, arrived=600, served=1200, window=600, workers=4)
    assert result.arrival_rate == 1.0 and result.service_rate == 2.0
    assert result.drain_seconds == pytest.approx(300.0)
    assert not result.growing and result.growth_per_minute == 0.0


def test_a_growing_queue_says_by_how_much() -> None:
    result = forecast("q", depth=50, arrived=1800, served=1200, window=600, workers=2)
    assert result.drain_seconds is None
    assert result.growing
    assert result.growth_per_minute == pytest.approx(60.0)


def test_workers_needed_to_drain_within_the_target() -> None:
    # one worker serves 0.5 job/s; arrivals 1 job/s; 600 waiting to clear in 300 s:
    # n * 0.5 >= 1 + 2 -> n = 6
    result = forecast("q", depth=600, arrived=600, served=600, window=600, workers=2, target=300)
    assert result.workers_needed == 6
    # the same rates with an empty queue need only keep up: 2 workers
    idle = forecast("q", depth=0, arrived=600, served=600, window=600, workers=2, target=300)
    assert idle.workers_needed == 2 and idle.drain_seconds == 0.0


def test_no_measured_service_gives_no_worker_estimate() -> None:
    result = forecast("q", depth=10, arrived=5, served=0, window=60, workers=0, target=60)
    assert result.workers_needed is None
    assert result.drain_seconds is None and result.growing


def test_an_empty_steady_queue_is_drained() -> None:
    result = forecast("q", depth=0, arrived=0, served=0, window=60, workers=1)
    assert result.drain_seconds == 0.0 and not result.growing


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": -1}, "must not be negative"),
        ({"window": 0}, "window must be a positive"),
        ({"target": 0}, "target must be a positive"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"depth": 1, "arrived": 1, "served": 1, "window": 60, "workers": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        forecast("q", **args)  # type: ignore[arg-type]
