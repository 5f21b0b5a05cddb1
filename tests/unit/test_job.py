"""The transition table and dependency-cycle detection."""

from __future__ import annotations

import pytest

from conveyor.errors import DependencyCycle, IllegalTransition
from conveyor.job import (
    TERMINAL_STATES,
    TRANSITIONS,
    JobState,
    NewJob,
    can_transition,
    check_no_cycle,
    check_transition,
    find_cycle,
)

S = JobState

LEGAL = [
    (S.SCHEDULED, S.PENDING),
    (S.BLOCKED, S.PENDING),
    (S.PENDING, S.PROCESSING),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.RETRYING),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.CANCELLED),
    (S.RETRYING, S.PENDING),
    (S.FAILED, S.PENDING),
    (S.CANCELLED, S.PENDING),
    (S.PENDING, S.CANCELLED),
    (S.SCHEDULED, S.CANCELLED),
    (S.BLOCKED, S.CANCELLED),
]
ILLEGAL = [
    (S.COMPLETED, S.PENDING),
    (S.COMPLETED, S.PROCESSING),
    (S.PENDING, S.COMPLETED),
    (S.SCHEDULED, S.PROCESSING),
    (S.FAILED, S.PROCESSING),
    (S.RETRYING, S.PROCESSING),
    (S.BLOCKED, S.PROCESSING),
]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_transitions(current: JobState, target: JobState) -> None:
    assert can_transition(current, target)
    check_transition("j", current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transitions_raise(current: JobState, target: JobState) -> None:
    assert not can_transition(current, target)
    with pytest.raises(IllegalTransition, match=f"{current.value} to {target.value}"):
        check_transition("j", current, target)


def test_every_state_has_a_row_and_completed_is_final() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert TRANSITIONS[S.COMPLETED] == frozenset()
    assert all(t in TRANSITIONS for t in TERMINAL_STATES)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"a": ["b"], "b": ["c"], "c": []}, None),
        ({"a": ["x"], "b": ["a"]}, None),
    ],
)
def test_find_cycle(edges: dict[str, list[str]], expected: list[str] | None) -> None:
    cycle = find_cycle(edges)
    if expected is None:
        assert cycle is None
    else:
        assert cycle is not None
        assert set(cycle) == set(expected) and cycle[0] == cycle[-1]
        assert len(cycle) == len(expected)


def test_check_no_cycle_names_the_path() -> None:
    jobs = [
        NewJob(id="a", queue="q", task="t", payload=b"", depends_on=("b",)),
        NewJob(id="b", queue="q", task="t", payload=b"", depends_on=("a",)),
    ]
    with pytest.raises(DependencyCycle, match=r"a -> b -> a|b -> a -> b"):
        check_no_cycle(jobs)
