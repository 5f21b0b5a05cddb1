"""Fixtures of the Store conformance suite: every test runs once per registered driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.job import NewJob
from conveyor.stores.base import Store

from .support import SERVER_FIXTURES, STORE_FACTORIES, new_job, open_test_store

__all__ = ["STORE_FACTORIES"]


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock every store in the test is judged by."""
    return FakeClock()


@pytest.fixture(params=list(STORE_FACTORIES), ids=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    """A fresh, migrated store of each registered driver; closed after the test."""
    fixture = SERVER_FIXTURES.get(request.param)
    dsn = request.getfixturevalue(fixture) if fixture else None
    instance = open_test_store(request.param, tmp_path / "store", clock, dsn)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def make_job() -> Callable[..., NewJob]:
    """Factory: ``make_job(**overrides) -> NewJob`` with a fresh id and a small payload."""
    return new_job
