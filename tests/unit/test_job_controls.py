"""The App's job and queue controls: results with reasons, id prefixes, pause/resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.stores.support import LOCAL_DRIVERS, open_test_store

from conveyor import App, FakeClock, JobState
from conveyor.config import AppSettings
from conveyor.errors import AmbiguousJobId, InvalidOption, JobNotFound
from conveyor.job_controls import JobsChanged, Skipped
from conveyor.stores.base import ClaimParams, JobQuery
from conveyor.stores.controls import normalize_prefix, prefix_bounds

WAITING_ONLY = "only pending, scheduled, retrying or blocked jobs can be"


@pytest.fixture(params=LOCAL_DRIVERS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    clock = FakeClock()
    application = App(
        open_test_store(request.param, tmp_path / "store", clock),
        settings=AppSettings(),
        clock=clock,
    )
    application.task(name="t.echo")(echo)
    yield application
    application.close()


def echo(value: str) -> str:
    """The task the tests enqueue."""
    return value


def enqueue(app: App, value: str = "x") -> str:
    return app.enqueue("t.echo", (value,)).id


def claim_all(app: App) -> list[str]:
    leases = app.store.claim(ClaimParams(queues=["default"], worker_id="w", limit=100))
    return [lease.job_id for lease in leases]


def shared_prefix(a: str, b: str) -> str:
    size = 0
    while a[size] == b[size]:
        size += 1
    return a[:size]


# results -----------------------------------------------------------------------------------
def test_prioritize_returns_changed_and_skipped_with_reasons(app: App) -> None:
    running = enqueue(app)
    claim_all(app)
    waiting = enqueue(app)
    unknown = "00000000-0000-7000-8000-000000000000"

    result = app.prioritize_jobs([waiting, running, unknown], "critical")

    assert result == JobsChanged(
        "prioritize",
        [waiting],
        [
            Skipped(running, f"processing: {WAITING_ONLY} re-prioritized"),
            Skipped(unknown, "unknown id"),
        ],
    )
    assert app.get_job(waiting).job.priority == 30


def test_prioritize_refuses_a_bad_priority(app: App) -> None:
    job_id = enqueue(app)

    with pytest.raises(InvalidOption, match="priority"):
        app.prioritize_jobs([job_id], 101)


def test_move_takes_prefixes_and_reports_json(app: App) -> None:
    first = enqueue(app)
    second = enqueue(app)
    unique = second[: len(shared_prefix(first, second)) + 1]

    result = app.move_jobs([unique], "other")

    assert result.to_dict() == {"action": "move", "changed": [second], "skipped": []}
    assert app.get_job(second).job.queue == "other"
    assert app.get_job(first).job.queue == "default"


def test_cancel_reports_requested_and_finished_jobs(app: App) -> None:
    running = enqueue(app)
    claim_all(app)
    waiting = enqueue(app)
    app.cancel_jobs([waiting])

    result = app.cancel_jobs([running, waiting])

    assert result.changed == []
    assert result.requested == [running]
    assert result.skipped == [Skipped(waiting, "cancelled: already finished")]


def test_retry_and_purge_explain_what_they_skip(app: App) -> None:
    cancelled = enqueue(app)
    app.cancel_jobs([cancelled])
    running = enqueue(app)
    claim_all(app)
    pending = enqueue(app)

    retried = app.retry_jobs([cancelled, pending])
    assert retried.changed == [cancelled]
    assert retried.skipped == [
        Skipped(pending, "pending: only failed or cancelled jobs can be retried")
    ]

    purged = app.purge_jobs([pending, running, "nope"])
    assert purged.changed == [pending]
    assert purged.skipped == [
        Skipped(running, "processing: cancel it first"),
        Skipped("nope", "unknown id"),
    ]
    assert app.store.get(pending) is None


def test_bulk_methods_take_a_query(app: App) -> None:
    running = enqueue(app)
    claim_all(app)
    waiting = [enqueue(app), enqueue(app)]

    moved = app.move_jobs(JobQuery(queues=["default"]), "other")

    assert moved.changed == waiting
    assert [s.id for s in moved.skipped] == [running]
    raised = app.prioritize_jobs(JobQuery(queues=["other"], states=[JobState.PENDING]), 9)
    assert raised.changed == waiting
    assert {app.get_job(i).job.priority for i in waiting} == {9}
    cancelled = app.cancel_jobs(JobQuery(queues=["other"]))
    assert cancelled.changed == waiting
    assert app.retry_jobs(JobQuery(states=[JobState.CANCELLED])).changed == waiting
    assert app.purge_jobs(JobQuery(queues=["other"])).changed == waiting


def test_one_id_passed_as_a_string_is_refused_not_read_as_one_letter_prefixes(
    app: App,
) -> None:
    """``purge_jobs(job_id)`` instead of ``purge_jobs([job_id])``: each character would be
    a prefix, and ``0`` names whichever job is alone in starting with it."""
    kept = enqueue(app)
    gone = enqueue(app)
    assert app.purge_jobs([gone]).changed == [gone]

    for call in (app.purge_jobs, app.retry_jobs, app.cancel_jobs, app.resolve_job_ids):
        with pytest.raises(InvalidOption, match=r"a list of job ids.*\[' ?"):
            call(gone)

    assert app.store.get(kept) is not None
    assert app.get_job(kept).job.state is JobState.PENDING


# id prefixes -------------------------------------------------------------------------------
def test_resolve_job_id_of_a_unique_prefix_and_of_a_full_id(app: App) -> None:
    first = enqueue(app)
    second = enqueue(app)
    size = len(shared_prefix(first, second)) + 1

    assert app.resolve_job_id(first[:size]) == first
    assert app.resolve_job_id(second[:size].upper()) == second
    assert app.resolve_job_id(second.replace("-", "")) == second
    assert app.resolve_job_id(f" {first.upper()} ") == first


def test_an_ambiguous_prefix_lists_at_most_five_candidates(app: App) -> None:
    ids = sorted(enqueue(app, str(n)) for n in range(7))
    common = shared_prefix(ids[0], ids[-1])

    with pytest.raises(AmbiguousJobId) as raised:
        app.resolve_job_id(common)

    assert raised.value.candidates == ids[:5]
    assert str(raised.value).endswith(", …); give more characters")
    with pytest.raises(AmbiguousJobId):
        app.move_jobs([common], "other")
    assert {app.get_job(i).job.queue for i in ids} == {"default"}


def test_a_prefix_matching_nothing_is_not_found(app: App) -> None:
    job_id = enqueue(app)
    other = "f" if job_id[0] != "f" else "0"

    with pytest.raises(JobNotFound):
        app.resolve_job_id(other * 4)
    with pytest.raises(JobNotFound, match="'not-an-id'"):
        app.resolve_job_id("not-an-id")
    assert app.retry_jobs([other * 4]).skipped == [Skipped(other * 4, "unknown id")]


def test_prefix_bounds_cover_exactly_the_ids_with_that_prefix() -> None:
    assert normalize_prefix("0190A3C4") == "0190a3c4"
    assert normalize_prefix("0190a3c4d") == "0190a3c4-d"
    assert normalize_prefix("0190a3c4-d5") == "0190a3c4-d5"
    assert prefix_bounds("0190a3c4-d") == (
        "0190a3c4-d000-0000-0000-000000000000",
        "0190a3c4-dfff-ffff-ffff-ffffffffffff",
    )


# queues ------------------------------------------------------------------------------------
def test_pause_and_resume_queue(app: App) -> None:
    assert app.paused_queues() == []

    assert app.pause_queue("emails") is True
    assert app.pause_queue("emails") is False
    assert app.pause_queue("reports") is True
    assert app.paused_queues() == ["emails", "reports"]

    job_id = app.enqueue("t.echo", ("x",), queue="emails").id
    assert app.get_job(job_id).state is JobState.PENDING  # enqueueing still works

    assert app.resume_queue("emails") is True
    assert app.resume_queue("emails") is False
    assert app.paused_queues() == ["reports"]
