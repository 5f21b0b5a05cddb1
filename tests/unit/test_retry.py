"""Retry policies and the retry decision."""

from __future__ import annotations

import random

import pytest

from conveyor.errors import InvalidOption, Retry
from conveyor.job import FailureReason
from conveyor.retry import Custom, Exponential, Fixed, Linear, decide


def rng() -> random.Random:
    return random.Random(7)


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (10, 512.0), (11, 600.0), (500, 600.0)]
)
def test_exponential_grows_and_caps(attempt: int, expected: float) -> None:
    policy = Exponential(base=1.0, factor=2.0, cap=600.0, jitter=0.0)
    assert policy.delay(attempt, rng()) == expected


def test_exponential_jitter_stays_in_band() -> None:
    policy = Exponential(base=10.0, cap=1000.0, jitter=0.2)
    r = rng()
    delays = [policy.delay(1, r) for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert len(set(delays)) > 100


def test_fixed_linear_custom() -> None:
    assert Fixed(5).delay(9, rng()) == 5
    assert Linear(step=3, cap=10).delay(2, rng()) == 6
    assert Linear(step=3, cap=10).delay(9, rng()) == 10
    assert Custom(lambda n: n * 100.0).delay(3, rng()) == 300.0
    assert Custom(lambda n: -5.0).delay(3, rng()) == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_policies_refuse_bad_numbers(bad: float) -> None:
    with pytest.raises(InvalidOption):
        Exponential(base=bad)


def test_decide_retries_then_exhausts() -> None:
    kwargs = dict(max_attempts=3, policy=Fixed(10), retry_on=(Exception,), now=100.0, rng=rng())
    first = decide(ValueError("x"), attempt=1, **kwargs)  # type: ignore[arg-type]
    assert first.retry_at == 110.0 and first.reason is None
    last = decide(ValueError("x"), attempt=3, **kwargs)  # type: ignore[arg-type]
    assert last.retry_at is None and last.reason is FailureReason.EXHAUSTED


def test_decide_only_retries_chosen_errors() -> None:
    d = decide(
        KeyError("k"),
        attempt=1,
        max_attempts=5,
        policy=Fixed(1),
        retry_on=(ConnectionError,),
        now=0.0,
        rng=rng(),
    )
    assert d.retry_at is None and d.reason is FailureReason.NOT_RETRYABLE


def test_explicit_retry_uses_its_own_delay_and_always_retries() -> None:
    d = decide(
        Retry(delay=42),
        attempt=1,
        max_attempts=5,
        policy=Fixed(1),
        retry_on=(ConnectionError,),
        now=0.0,
        rng=rng(),
    )
    assert d.retry_at == 42.0
    exhausted = decide(
        Retry(delay=42),
        attempt=5,
        max_attempts=5,
        policy=Fixed(1),
        retry_on=(Exception,),
        now=0.0,
        rng=rng(),
    )
    assert exhausted.reason is FailureReason.EXHAUSTED
