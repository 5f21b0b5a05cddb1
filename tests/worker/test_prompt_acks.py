"""Completions are written promptly (issue 10, defect 6): within ``ack_flush_interval`` of
a job finishing, before a job of a slow or not yet measured task starts, and still
batched while short jobs run at full speed. A fake clock times the jobs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from conveyor import App, JobState
from conveyor.clock import FakeClock
from conveyor.config import AppSettings, WorkerSettings
from conveyor.job import Lease
from conveyor.stores.base import ClaimParams, Completion
from conveyor.stores.memory import MemoryStore
from conveyor.worker.consumer import Worker

INTERVAL = 0.005


class CountingStore(MemoryStore):
    """A memory store that records the size of every batch of completions it writes, each
    write taking ``write_time`` on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.fake_clock = clock
        self.batches: list[int] = []
        self.write_time = 0.0

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        self._write(completions)
        return super().complete(completions, now=now)

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        self._write(completions)
        return super().complete_and_claim(completions, params)

    def _write(self, completions: Sequence[Completion]) -> None:
        self.batches.append(len(completions))
        self.fake_clock.advance(self.write_time)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> CountingStore:
    return CountingStore(clock)


@pytest.fixture
def app(store: CountingStore, clock: FakeClock) -> Iterator[App]:
    application = App(store, settings=AppSettings(), clock=clock)
    yield application
    application.close()


def worker(app: App, **overrides: object) -> Worker:
    settings: dict[str, object] = dict(
        burst=True,
        poll_interval=0.05,
        lease_seconds=4.0,
        heartbeat_interval=0.05,
        rescue_interval=1.0,
        prefetch=20,
        ack_flush_interval=INTERVAL,
    )
    settings.update(overrides)
    return Worker(app, WorkerSettings(**settings), maintenance=False)  # type: ignore[arg-type]


def test_a_completion_is_written_before_a_long_job_starts(app: App) -> None:
    """The job after a finished one may run for minutes: it must not hold the completion."""
    seen: list[JobState] = []

    @app.task(name="quick")
    def quick() -> None:
        return None

    first = quick.with_options(priority=10).enqueue()

    @app.task(name="long")
    def long() -> None:
        seen.append(app.get_job(first.id).state)

    long.enqueue()
    worker(app).run()
    assert seen == [JobState.COMPLETED]


@pytest.mark.parametrize(
    ("write_time", "limit", "writes"),
    [
        # 20 jobs of 2 ms under a 5 ms interval: batches of about three, not one per job
        (0.0, INTERVAL, 8),
        # a 1 ms write would take 20% of the time every 5 ms: the window stretches to 4x
        (0.001, 4 * INTERVAL, 4),
    ],
    ids=["fast-store", "slow-store"],
)
def test_completions_are_written_within_the_interval_while_busy(
    app: App, clock: FakeClock, store: CountingStore, write_time: float, limit: float, writes: int
) -> None:
    """Short jobs back to back: at each start, every job that finished more than the
    window ago is acknowledged; and the writes are still batched."""
    store.write_time = write_time
    finished_at: dict[str, float] = {}
    late: list[str] = []

    @app.task(name="tick")
    def tick(n: int) -> None:
        now = clock.monotonic()
        for job_id, at in finished_at.items():
            if now - at > limit and app.get_job(job_id).state is not JobState.COMPLETED:
                late.append(job_id)
        clock.advance(0.002)

    handles = [tick.enqueue(n) for n in range(20)]
    run = worker(app)
    original = run.acks.acknowledge

    def acknowledge(lease: Lease, outcome: object, runtime: float) -> None:
        finished_at[lease.job_id] = clock.monotonic()
        original(lease, outcome, runtime)  # type: ignore[arg-type]

    run.acks.acknowledge = acknowledge  # type: ignore[method-assign]
    run.run()
    assert late == []
    assert all(app.get_job(h.id).state is JobState.COMPLETED for h in handles)
    assert sum(store.batches) == 20
    assert len([b for b in store.batches if b]) <= writes


def test_no_op_jobs_at_full_speed_share_one_write(app: App, store: CountingStore) -> None:
    @app.task(name="noop")
    def noop(n: int) -> None:
        return None

    for n in range(20):
        noop.enqueue(n)
    worker(app).run()
    assert [b for b in store.batches if b] == [20]


def test_interval_zero_writes_each_completion_at_once(app: App, store: CountingStore) -> None:
    @app.task(name="noop")
    def noop(n: int) -> None:
        return None

    for n in range(5):
        noop.enqueue(n)
    worker(app, ack_flush_interval=0).run()
    assert [b for b in store.batches if b] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf")])
def test_a_bad_interval_is_refused_with_what_to_give(bad: float) -> None:
    from conveyor.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"ack_flush_interval: must be 0 or more"):
        WorkerSettings(ack_flush_interval=bad)


def test_the_interval_comes_from_the_environment() -> None:
    from conveyor.config import build

    settings = build(WorkerSettings, flags={}, env={"CONVEYOR_ACK_FLUSH_INTERVAL": "0.02"}, file={})
    assert settings.ack_flush_interval == pytest.approx(0.02)
