"""The pruner: retention settings, one leader per interval, passes that yield on a budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.stores.support import LOCAL_DRIVERS, add, claim_one, open_test_store

from conveyor.clock import FakeClock
from conveyor.config import WorkerSettings, build
from conveyor.coordination.decisions import read_decisions, record_decision
from conveyor.errors import ConfigurationError, InvalidOption, StoreUnavailable
from conveyor.maintenance.pruner import LEASE_NAME, Pruner, prune
from conveyor.maintenance.retention import Retention, describe, parse_retention
from conveyor.stores.base import Completion, PruneParams, PruneResult, Store

DAY = 86400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=LOCAL_DRIVERS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    instance = open_test_store(request.param, tmp_path / "store", clock)
    try:
        yield instance
    finally:
        instance.close()


def _completed(store: Store, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        job_id = add(store)
        store.complete([Completion(claim_one(store, job_id), None)])
        ids.append(job_id)
    return ids


# settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1d", DAY), ("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("90", 90.0), ("2w", 14 * DAY)],
)
def test_retention_durations(text: str, seconds: float) -> None:
    assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["forever", "Forever", " FOREVER "])
def test_forever_keeps(text: str) -> None:
    assert parse_retention(text) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0", "would delete jobs the moment"),
        ("0s", "'forever'"),
        ("keep", "not a retention"),
        ("-1d", "not a retention"),
        ("1y", "45s, 30m, 12h, 1d, 2w"),
    ],
)
def test_bad_retention_is_refused_with_the_fix(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match="retention_failed") as err:
        parse_retention(text, "retention_failed")
    assert needle in str(err.value)


def test_worker_settings_defaults_and_layers() -> None:
    defaults = Retention.of(WorkerSettings())
    assert defaults == Retention(completed=DAY, failed=14 * DAY, cancelled=DAY)
    assert defaults.as_dict() == {"completed": "1d", "failed": "2w", "cancelled": "1d"}
    layered = build(
        WorkerSettings,
        flags={"retention_completed": "2h"},
        env={"CONVEYOR_RETENTION_COMPLETED": "3h", "CONVEYOR_RETENTION_FAILED": "forever"},
        file={"retention_cancelled": "30m", "retention_failed": "1d"},
    )
    assert Retention.of(layered) == Retention(completed=7200.0, failed=None, cancelled=1800.0)
    with pytest.raises(ConfigurationError, match="retention_cancelled"):
        build(WorkerSettings, env={"CONVEYOR_RETENTION_CANCELLED": "soon"})
    with pytest.raises(ConfigurationError, match="prune_interval"):
        WorkerSettings(prune_interval=0)


def test_store_defaults_match_the_settings() -> None:
    params = PruneParams()
    default = Retention()
    assert (params.completed_after, params.failed_after, params.cancelled_after) == (
        default.completed,
        default.failed,
        default.cancelled,
    )


def test_describe_round_trips() -> None:
    for text in ("45s", "30m", "12h", "1d", "2w", "36h", "forever"):
        assert describe(parse_retention(text)) == text


# the leader ----------------------------------------------------------------------------------


def test_one_pruner_prunes_per_interval_and_another_takes_over(
    store: Store, clock: FakeClock
) -> None:
    retention = Retention(completed=60.0)
    a = Pruner(store, retention, holder="node-a", interval=60.0)
    b = Pruner(store, retention, holder="node-b", interval=60.0)
    first = _completed(store, 3)
    clock.advance(61)

    ran = [a.step(), b.step()]

    assert ran[0] is not None and ran[0].deleted["completed"] == 3
    assert ran[1] is None  # node-a leads
    assert store.get_many(first) == []
    assert a.step() is None and b.step() is None  # not due again before the interval

    second = _completed(store, 2)
    clock.advance(61)
    ran = [b.step(), a.step()]
    assert ran[0] is None  # b asked first, but a's lease still holds
    assert ran[1] is not None and ran[1].deleted["completed"] == 2
    assert store.get_many(second) == []

    a.close()  # clean shutdown: b leads from its next due step
    assert store.get_record("lease", LEASE_NAME) is None
    third = _completed(store, 1)
    clock.advance(61)
    taken = b.step()
    assert taken is not None and taken.deleted["completed"] == 1
    assert store.get_many(third) == []
    assert a.step() is None  # a is due, but b leads now


def test_a_dead_leader_is_replaced_after_the_lease_ttl(store: Store, clock: FakeClock) -> None:
    retention = Retention(completed=60.0)
    a = Pruner(store, retention, holder="node-a", interval=60.0)
    b = Pruner(store, retention, holder="node-b", interval=60.0)
    assert a.step() is not None
    clock.advance(61)
    assert b.step() is None  # a's lease outlives one interval
    clock.advance(a.lease.ttl)  # a died: nobody renewed
    assert b.step() is not None


class _SlowStore:
    """Every prune call takes 0.4 s of the fake clock (the rest is the real store)."""

    def __init__(self, store: Store, clock: FakeClock) -> None:
        self._store = store
        self._clock = clock
        self.calls: list[PruneParams] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def prune(self, params: PruneParams) -> PruneResult:
        self.calls.append(params)
        self._clock.advance(0.4)
        return self._store.prune(params)


def test_a_pass_yields_after_its_budget_and_continues_at_once(
    store: Store, clock: FakeClock
) -> None:
    ids = _completed(store, 10)
    clock.advance(DAY + 1)
    slow = _SlowStore(store, clock)
    pruner = Pruner(slow, Retention(), holder="a", interval=600.0, batch=2, budget=1.0)  # type: ignore[arg-type]

    first = pruner.step()

    assert first is not None and not first.done
    assert first.deleted == {"completed": 6}  # three 0.4 s batches spend the 1 s budget
    assert first.longest_batch == pytest.approx(0.4)
    assert pruner.backlog and pruner.due()
    assert not any(call.sweep for call in slow.calls)
    second = pruner.step()  # not 600 s later: the backlog continues at the next step
    assert second is not None and second.done
    assert second.deleted == {"completed": 4, "failed": 0, "cancelled": 0}
    assert slow.calls[-1].sweep and not pruner.backlog
    assert store.get_many(ids) == []
    assert pruner.step() is None  # now the interval applies


class _FlakyStore(_SlowStore):
    """A slow store that can go down: ``prune`` then raises ``StoreUnavailable``."""

    down = False

    def prune(self, params: PruneParams) -> PruneResult:
        if self.down:
            self.calls.append(params)
            raise StoreUnavailable("store down")
        return super().prune(params)


def test_a_failed_step_waits_for_the_interval_even_with_a_backlog(
    store: Store, clock: FakeClock
) -> None:
    """With a backlog the next step runs at once; if that step fails (the store is down),
    the host's loop must not retry at once: the solo worker's maintenance thread waits
    0 s while there is a backlog, so it would spin on the store and the log."""
    _completed(store, 10)
    clock.advance(DAY + 1)
    flaky = _FlakyStore(store, clock)
    pruner = Pruner(flaky, Retention(), holder="a", interval=600.0, batch=2, budget=1.0)  # type: ignore[arg-type]
    first = pruner.step()
    assert first is not None and not first.done and pruner.backlog

    flaky.down = True
    with pytest.raises(StoreUnavailable):
        pruner.step()
    tried = len(flaky.calls)

    assert not pruner.backlog and not pruner.due()
    assert pruner.step() is None
    assert len(flaky.calls) == tried  # no store call before the interval
    flaky.down = False
    clock.advance(600)
    again = pruner.step()
    assert again is not None and again.done


def test_nothing_to_keep_takes_no_lease(store: Store, clock: FakeClock) -> None:
    pruner = Pruner(store, Retention(None, None, None), holder="a")
    assert not pruner.enabled
    assert pruner.step() is None
    assert store.get_record("lease", LEASE_NAME) is None


def test_batch_must_be_positive(store: Store) -> None:
    with pytest.raises(InvalidOption, match="batch"):
        prune(store, Retention(), batch=0)


def test_a_pass_deletes_the_condition_decisions_of_its_jobs(store: Store, clock: FakeClock) -> None:
    old, recent = _completed(store, 1)[0], add(store)
    for job_id in (old, recent):
        record_decision(store, job_id, "defer", "outside the window", "time_window", 60.0)
    clock.advance(DAY + 1)

    report = prune(store, Retention())

    assert report.deleted["completed"] == 1 and report.orphans == 1
    assert read_decisions(store, old) == []
    assert [d.action for d in read_decisions(store, recent)] == ["defer"]
