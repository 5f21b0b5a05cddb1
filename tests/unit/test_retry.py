"""Retry policies and the retry decision."""

from __future__ import annotations

import random

import pytest

from conveyor.errors import InvalidOption, Retry, UnknownTask
from conveyor.job import FailureReason, Job, JobState
from conveyor.retry import Custom, Exponential, Fixed, Linear, after_failure, decide
from conveyor.task import TaskOptions


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


# --- after_failure: the one decision of the executor and the supervisor -----------------------
def running(attempt: int, max_attempts: int = 3) -> Job:
    return Job(
        id="j",
        queue="q",
        task="t",
        payload=b"",
        state=JobState.PROCESSING,
        attempt=attempt,
        max_attempts=max_attempts,
    )


def test_after_failure_follows_the_tasks_policy_and_errors() -> None:
    options = TaskOptions(retry=Fixed(10), retry_on=(ConnectionError,))
    retried = after_failure(ConnectionError(), running(1), options, now=5.0, rng=rng())
    assert retried.retry_at == 15.0 and retried.reason is None
    refused = after_failure(KeyError("k"), running(1), options, now=5.0, rng=rng())
    assert refused.retry_at is None and refused.reason is FailureReason.NOT_RETRYABLE


def test_after_failure_names_exhaustion_as_the_caller_says() -> None:
    options = TaskOptions(retry=Fixed(10))
    plain = after_failure(ValueError(), running(3), options, now=0.0, rng=rng())
    assert plain.reason is FailureReason.EXHAUSTED
    poison = after_failure(
        Retry(), running(3), options, now=0.0, rng=rng(), exhausted=FailureReason.POISON
    )
    assert poison.retry_at is None and poison.reason is FailureReason.POISON
    # only running out of attempts is renamed: an error not worth retrying stays so
    not_retryable = after_failure(
        KeyError(),
        running(1),
        TaskOptions(retry_on=(ConnectionError,)),
        now=0.0,
        rng=rng(),
        exhausted=FailureReason.POISON,
    )
    assert not_retryable.reason is FailureReason.NOT_RETRYABLE


def test_a_lost_process_is_retried_whatever_the_task_retries_on() -> None:
    options = TaskOptions(retry=Fixed(7), retry_on=(ConnectionError,))
    lost = after_failure(
        Retry(), running(1), options, now=1.0, rng=rng(), exhausted=FailureReason.POISON
    )
    assert lost.retry_at == 8.0 and lost.reason is None


def test_a_job_of_an_unknown_task_retries_only_on_unknown_task() -> None:
    unknown = after_failure(UnknownTask("t"), running(1), None, now=0.0, rng=random.Random(1))
    assert unknown.retry_at is not None and unknown.reason is None
    other = after_failure(ValueError(), running(1), None, now=0.0, rng=rng())
    assert other.reason is FailureReason.NOT_RETRYABLE
