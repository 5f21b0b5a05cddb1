"""Queue specs and weighted selection."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from conveyor.errors import ConfigurationError
from conveyor.queues import QueueSelector, parse_queues


def test_strict_order() -> None:
    spec = parse_queues("high, default,low")
    assert spec.names == ("high", "default", "low") and not spec.weighted
    selector = QueueSelector(spec)
    assert all(selector.next_order() == ["high", "default", "low"] for _ in range(5))


def test_weights_share_first_pick_in_proportion_and_interleave() -> None:
    selector = QueueSelector(parse_queues("high=6,default=3,low=1"))
    orders = [selector.next_order() for _ in range(100)]
    firsts = Counter(order[0] for order in orders)
    assert firsts == {"high": 60, "default": 30, "low": 10}
    # smooth: 'low' never waits more than one full round for its turn
    positions = [i for i, order in enumerate(orders) if order[0] == "low"]
    assert max(b - a for a, b in itertools.pairwise(positions)) == 10
    # every order lists every queue, so idle capacity falls through
    assert all(sorted(order) == ["default", "high", "low"] for order in orders)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "at least one queue"),
        ("a=1,b", "mixes weighted"),
        ("a=0", "weight of 'a'"),
        ("a=x", "weight of 'a'"),
        ("Bad Name", "not a valid queue name"),
        ("../etc", "not a valid queue name"),
        ("a,a", "twice"),
    ],
)
def test_bad_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_queues(spec)
