"""The store object itself: protocol, migrate, info, close, and refusing a reused id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import InvalidJob
from conveyor.job import JobState, NewJob
from conveyor.stores.base import Store, StoreInfo

from .support import LOCAL_DRIVERS, add, count_jobs, must_get, open_test_store


def test_the_driver_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_migrate_is_idempotent(store: Store) -> None:
    job_id = add(store)

    first = store.migrate()
    second = store.migrate()

    assert isinstance(first, int)
    assert first == second
    assert must_get(store, job_id).state is JobState.PENDING


def test_info_names_the_driver_and_durability(store: Store) -> None:
    info = store.info()

    assert isinstance(info, StoreInfo)
    assert info.driver
    assert info.location
    assert info.durability


@pytest.mark.parametrize("driver", LOCAL_DRIVERS)
def test_close_is_safe_to_call_twice(driver: str, tmp_path: Path) -> None:
    instance = open_test_store(driver, tmp_path / "store", FakeClock())
    add(instance)

    instance.close()
    instance.close()


def test_an_id_already_stored_is_refused_and_nothing_is_written(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(payload=b"first")
    store.enqueue([first])
    other = make_job()

    with pytest.raises(InvalidJob):
        store.enqueue([other, make_job(id=first.id, payload=b"second")])

    assert must_get(store, first.id).payload == b"first"
    assert store.get(other.id) is None
    assert count_jobs(store) == 1


def test_an_id_twice_in_one_batch_is_refused(store: Store, make_job: Callable[..., NewJob]) -> None:
    job = make_job()

    with pytest.raises(InvalidJob):
        store.enqueue([job, make_job(id=job.id)])

    assert count_jobs(store) == 0
