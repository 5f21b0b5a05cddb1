"""The Redis store's enqueue: the shared planner's arguments and replies of ``enqueue.lua``.

The batch is planned in Python (:mod:`conveyor.stores.enqueue_plan`) from what one read
of the script observed; the script's write step checks that observation again before it
writes, so the plan and the writes are atomic together (a changed observation means
"plan again").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from conveyor.errors import StoreUnavailable
from conveyor.job import EnqueueResult, JobState, NewJob
from conveyor.stores.enqueue_plan import (
    EnqueuePlan,
    KeyHold,
    Reads,
    Stored,
    plan_enqueue,
    reads_for,
)
from conveyor.stores.redis import codec
from conveyor.stores.redis.codec import text
from conveyor.stores.redis.connection import RedisConnection

ENQUEUE_TRIES: Final = 50
"""Plans per enqueue before giving up when the observed keys keep changing."""


class RedisEnqueue(RedisConnection):
    """The producers' hook: plan in Python, write in one script."""

    _marked_pid = -1
    """The process whose first enqueue wrote the layout key (see :meth:`_enqueue`)."""

    def _enqueue(
        self, jobs: Sequence[NewJob], now: float, connection: object | None
    ) -> list[EnqueueResult]:
        """Plan the batch in Python from one read, then write it in one script.

        The script writes only if what the plan read is unchanged, else we plan again.
        """
        if self._marked_pid != os.getpid():
            # the first write creates the store, as SQLite's first write creates its file:
            # read commands look for the layout key before they open a prefix
            self.migrate()
            self._marked_pid = os.getpid()
        reads = reads_for(jobs)
        asked = encode_reads(reads)
        for _ in range(ENQUEUE_TRIES):
            observed: list[bytes] = self._run("enqueue", ["read", *asked]) if reads else []
            plan = plan_enqueue(jobs, now, decode_observation(reads, observed))
            if self._run("enqueue", ["write", *asked, *observed, *encode_plan(plan, now)]):
                return plan.results
        raise StoreUnavailable(
            f"enqueue: the keys or dependencies of this batch changed {ENQUEUE_TRIES} times "
            "while it was being planned; retry the enqueue"
        )


def encode_reads(reads: Reads) -> list[str]:
    """``nids id... nunique key... nidem key...``."""
    out: list[str] = []
    for items in (reads.job_ids, reads.unique_keys, reads.idempotency_keys):
        out.append(str(len(items)))
        out.extend(items)
    return out


def decode_observation(reads: Reads, observed: Sequence[bytes]) -> Stored:
    """The script's observation (see ``enqueue.lua``) as the planner's input."""
    values = [text(v) for v in observed]
    states: dict[str, JobState] = {}
    at = len(reads.job_ids)
    for job_id, state in zip(reads.job_ids, values[:at], strict=True):
        if state:
            states[job_id] = _state(state) or JobState.FAILED
    unique: dict[str, KeyHold] = {}
    for key in reads.unique_keys:
        job_id, expires, state = values[at : at + 3]
        at += 3
        if job_id:
            unique[key] = KeyHold(job_id, _float(expires), _state(state))
    idempotency: dict[str, KeyHold] = {}
    for key in reads.idempotency_keys:
        job_id, expires, fingerprint, state = values[at : at + 4]
        at += 4
        if job_id:
            idempotency[key] = KeyHold(job_id, _float(expires), _state(state), fingerprint)
    return Stored(states, unique, idempotency)


def encode_plan(plan: EnqueuePlan, now: float) -> list[str | bytes]:
    """``now n`` then each planned job's fields, in the order ``enqueue.lua`` reads them."""
    args: list[str | bytes] = [codec.num(now), str(len(plan.jobs))]
    for planned in plan.jobs:
        job = planned.job
        run_at = now if job.run_at is None else job.run_at
        args += [
            job.id,
            job.queue,
            job.task,
            job.payload,
            str(job.priority),
            str(job.max_attempts),
            codec.num(run_at),
            codec.sort_key(run_at),
            "" if job.timeout is None else codec.num(job.timeout),
            job.on_dependency_failure.value,
            job.parent_id or "",
            codec.pack_strings(job.tags),
            job.unique_key or "",
            "" if job.unique_for is None else codec.num(now + job.unique_for),
            job.idempotency_key or "",
            codec.num(now + job.idempotency_for),
            job.fingerprint,
            str(job.task_version),
            codec.pack_strings(planned.depends_on),
            planned.state.value,
            str(len(planned.open_deps)),
            *planned.open_deps,
        ]
    return args


def _float(text: str) -> float | None:
    """An expiry; an unreadable one counts as expired (the hold's job is corrupt)."""
    try:
        return float(text) if text else None
    except ValueError:
        return float("-inf")


def _state(text: str) -> JobState | None:
    """A stored state; one no Conveyor writes (a corrupt job, which a claim quarantines as
    failed) counts as ``failed``, so an enqueue never stops on it."""
    if not text:
        return None
    try:
        return JobState(text)
    except ValueError:
        return JobState.FAILED
