"""Failure root causes: the same problem gets one fingerprint, different problems differ."""

from __future__ import annotations

import json
import traceback

import pytest
from tests.stores.support import new_job

from conveyor.analysis.failures import (
    fingerprint,
    group_failures,
    normalize_message,
    user_frame,
)
from conveyor.clock import FakeClock
from conveyor.job import JobError, NewJob
from conveyor.stores.base import ClaimParams
from conveyor.stores.memory import MemoryStore


def error_from(exc: BaseException, attempt: int = 1, at: float = 0.0) -> JobError:
    text = "".join(traceback.format_exception(exc))
    return JobError(attempt, type(exc).__name__, str(exc), text, failed_at=at)


def charge(order: int) -> None:
    raise ValueError(f"card declined for order {order} (user 'ann@example.com', 42.50 EUR)")


def parse(text: str) -> object:
    return json.loads(text)  # the exception is raised inside the standard library


def caught(fn: object, *args: object) -> BaseException:
    try:
        fn(*args)  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("order 1234 failed", "order <n> failed"),
        ("job 0190a3c4-1b2c-7d3e-8f90-123456789abc lost", "job <id> lost"),
        ("no user 'bob'", "no user <value>"),
        ("connect to 10.0.0.7:5432 refused", "connect to <ip> refused"),
        ("GET https://api.example.com/v1/x?id=3 gave 503", "GET <url> gave <n>"),
        ("mail to ann@example.com bounced", "mail to <email> bounced"),
        ("object at 0x7f3a2b1c", "object at <id>"),
        ("digest 9f86d081884c7d65 mismatch", "digest <id> mismatch"),
        ("  spaced \n  out  ", "spaced out"),
    ],
)
def test_what_varies_per_job_is_taken_out_of_the_message(message: str, expected: str) -> None:
    assert normalize_message(message) == expected


def test_the_frame_is_the_users_innermost_not_the_standard_librarys() -> None:
    error = error_from(caught(parse, "{not json"))
    assert user_frame(error.traceback) == "test_failure_groups.py:parse"
    assert user_frame("") == ""


def test_the_same_problem_with_other_values_shares_a_fingerprint() -> None:
    first = error_from(caught(charge, 1))
    second = error_from(caught(charge, 987654))
    assert first.message != second.message
    assert fingerprint(first) == fingerprint(second)


def test_other_types_messages_or_places_differ() -> None:
    base = error_from(caught(charge, 1))
    other_place = error_from(caught(parse, "{"))
    other_type = JobError(1, "KeyError", base.message, base.traceback)
    other_message = JobError(1, base.type, "stock exhausted", base.traceback)
    prints = {fingerprint(e) for e in (base, other_place, other_type, other_message)}
    assert len(prints) == 4


def test_failed_jobs_are_grouped_largest_first_with_examples() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    declined = [new_job(task="shop.charge", queue="payments") for _ in range(3)]
    broken = [new_job(task="feeds.parse") for _ in range(1)]
    store.enqueue([*declined, *broken])
    errors = [error_from(caught(charge, n), at=100.0 + n) for n in range(3)]
    errors.append(error_from(caught(parse, "{"), at=50.0))
    for job, error in zip([*declined, *broken], errors, strict=True):
        [lease] = store.claim(ClaimParams(queues=[job.queue], worker_id="w", job_ids=[job.id]))
        store.fail(lease, error, retry_at=None)
    groups = group_failures(store.all_jobs())
    assert [g.count for g in groups] == [3, 1]
    top = groups[0]
    assert top.type == "ValueError" and top.frame == "test_failure_groups.py:charge"
    assert top.message.startswith("card declined for order <n>")
    assert (top.first_seen, top.last_seen) == (100.0, 102.0)
    assert top.tasks == {"shop.charge"} and top.queues == {"payments"}
    assert top.examples == [declined[2].id, declined[1].id, declined[0].id]
    assert groups[1].tasks == {"feeds.parse"}


def test_jobs_without_errors_are_left_out() -> None:
    store = MemoryStore(clock=FakeClock())
    job: NewJob = new_job()
    store.enqueue([job])
    assert group_failures(store.all_jobs()) == []
