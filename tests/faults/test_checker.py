"""The checker itself: each measure catches what it is for (so a scenario can fail)."""

from __future__ import annotations

from pathlib import Path

from conveyor import Job, JobState

from .checker import Effect, Timing, check, read_effects, recovery_time, stuck_jobs

TIMING = Timing(lease=3.0, rescue_interval=1.0, poll_interval=0.2)


def job(job_id: str, state: JobState, **fields: object) -> Job:
    return Job(id=job_id, queue="default", task="work", payload=b"", state=state, **fields)  # type: ignore[arg-type]


def start(job_id: str, t: float, attempt: int = 1, pid: int = 1) -> Effect:
    return Effect("start", job_id, attempt, pid, t)


def end(job_id: str, t: float, attempt: int = 1, pid: int = 1) -> Effect:
    return Effect("end", job_id, attempt, pid, t)


def test_a_clean_run_reports_nothing() -> None:
    jobs = {"a": job("a", JobState.COMPLETED), "b": job("b", JobState.PENDING)}
    report = check("s", "sqlite", ["a", "b"], jobs, [start("a", 1), end("a", 2)], TIMING)
    report.assert_guarantees()
    assert (report.duplicate_runs, report.recovery, report.jobs) == (0, None, 2)


def test_missing_and_dead_jobs_are_lost() -> None:
    jobs = {"a": None, "b": job("b", JobState.COMPLETED)}
    report = check("s", "sqlite", ["a", "b"], jobs, [start("b", 1)], TIMING)
    assert report.lost == ["a"]


def test_failed_without_an_effect_is_dead_lettered_without_running() -> None:
    jobs = {
        "unrun": job("unrun", JobState.FAILED, failure_reason="poison"),
        "ran": job("ran", JobState.FAILED, failure_reason="poison"),
        "bad": job("bad", JobState.FAILED, failure_reason="corrupt"),
    }
    effects = [start("ran", 1)]
    report = check("s", "sqlite", list(jobs), jobs, effects, TIMING, corrupted=frozenset({"bad"}))
    assert report.dead_lettered_without_running == ["unrun"]


def test_runs_beyond_the_first_of_a_completed_job_are_duplicates() -> None:
    jobs = {"a": job("a", JobState.COMPLETED)}
    effects = [start("a", 1), start("a", 2, pid=2), end("a", 3, pid=2), start("a", 4, 2)]
    assert check("s", "sqlite", ["a"], jobs, effects, TIMING).duplicate_runs == 2


def test_a_run_of_a_completed_job_is_acknowledged_twice() -> None:
    jobs = {"a": job("a", JobState.COMPLETED)}
    effects = [start("a", 1), end("a", 2), start("a", 3, 2), Effect("after_ack", "a", 2, 1, 3)]
    assert check("s", "sqlite", ["a"], jobs, effects, TIMING).acknowledged_twice == ["a"]


def test_a_lease_expired_longer_than_the_rescuer_takes_is_stuck() -> None:
    held = job("held", JobState.PROCESSING, lease_expires_at=100.0)
    assert stuck_jobs([held], now=102.0, timing=TIMING) == set()
    assert stuck_jobs([held], now=102.3, timing=TIMING) == {"held"}


def test_recovery_is_the_worst_delay_of_an_interrupted_job() -> None:
    effects = [start("a", 9), end("a", 9.5), start("b", 9.8), start("c", 9.9)]
    effects += [start("b", 13, 2, 2), start("c", 15, 2, 2), end("c", 15.5, 2, 2)]
    assert recovery_time(effects, fault_at=10.0) == 5.0
    assert recovery_time([start("a", 9), end("a", 9.1), start("b", 11.5)], 10.0) == 1.5
    paused = [start("a", 9), end("a", 14), start("a", 13.5, 2, 2), end("a", 14, 2, 2)]
    assert recovery_time(paused, fault_at=10.0) == 3.5
    report = check("s", "sqlite", [], {}, effects, TIMING, fault_at=10.0)
    assert report.recovery == 5.0 and "| 5.0 | 6.2 |" in report.row()


def test_effect_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "effects.jsonl"
    assert read_effects(path) == []
    path.write_text('{"event": "start", "job": "a", "attempt": 1, "pid": 7, "t": 1.5}\n')
    assert read_effects(path) == [start("a", 1.5, pid=7)]
