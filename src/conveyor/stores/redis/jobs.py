"""The consumers' side of the Redis store: claim, acknowledge, heartbeat, fail, release.

Each hook is one script call fenced by the lease token (``ack_claim.lua`` for claims and
completions together, the worker's hot path). A leased job Python cannot decode goes to
the DLQ at once (``quarantine.lua``) and is logged, with the stale index entries the
claim dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from conveyor.job import FailureReason, JobState, Lease
from conveyor.stores.base import ClaimParams, Completion, Failure, HeartbeatResult
from conveyor.stores.redis import codec
from conveyor.stores.redis.codec import text, texts
from conveyor.stores.redis.connection import RedisConnection, log


class RedisJobs(RedisConnection):
    """Claims and the transitions of a held job, one script each."""

    def _claim(self, params: ClaimParams, now: float, lease_now: float | None) -> list[Lease]:
        """Lease up to ``limit`` pending jobs, queues in the given order."""
        return self._ack_claim([], params, now)[1]

    def _complete(self, completions: Sequence[Completion], now: float) -> list[str]:
        """Mark held jobs completed and release their dependents (one script)."""
        return self._ack_claim(completions, None, now)[0]

    def _complete_and_claim(
        self,
        completions: Sequence[Completion],
        params: ClaimParams,
        now: float,
        lease_now: float | None,
    ) -> tuple[list[str], list[Lease]]:
        """Acknowledge and take the next jobs in one script call."""
        return self._ack_claim(completions, params, now)

    def _ack_claim(
        self, completions: Sequence[Completion], params: ClaimParams | None, now: float
    ) -> tuple[list[str], list[Lease]]:
        args: list[str | bytes] = [codec.num(now), str(len(completions))]
        for done in completions:
            args += [
                done.lease.job_id,
                done.lease.token,
                "0" if done.result is None else "1",
                b"" if done.result is None else done.result,
            ]
        if params is None:
            args += ["", codec.num(now), "q", "0", "0"]
            expires = now
        else:
            expires = now + params.lease_for
            limit = max(params.limit, 0)
            if params.job_ids is not None:
                selection, mode = list(params.job_ids), "ids"
            else:
                selection, mode = list(params.queues), "q"
            args += [params.worker_id, codec.num(expires), mode, str(limit), str(len(selection))]
            args += selection
            args += [os.urandom(16).hex() for _ in range(limit)]
        lost_raw, claimed, dropped, corrupt = self._run("ack_claim", args)
        self._report_repairs(dropped, corrupt)
        leases = []
        undecodable: list[tuple[bytes, bytes, str]] = []
        for flat, errors in claimed:
            fields = codec.fields_of(flat)
            try:
                job = codec.job_from_fields(fields, errors)
            except codec.CorruptJobData as exc:
                # The claim checked that the id field is the key's id; bytes go back as read.
                undecodable.append((fields[b"id"], fields.get(b"lease_token", b""), str(exc)))
                continue
            leases.append(Lease(job, job.lease_token or "", expires))
        if undecodable:
            self._quarantine(undecodable, now)
        return texts(lost_raw), leases

    def _report_repairs(self, dropped: Sequence[bytes], corrupt: Sequence[list[bytes]]) -> None:
        """Log what a claim repaired: stale pending entries dropped, corrupt jobs moved to
        the DLQ (counted in Redis too, see :meth:`RedisStore.info`)."""
        if dropped:
            log.warning(
                "Redis store %s: dropped %d pending-queue entries whose job is not pending "
                "or no longer exists: %s",
                self.prefix,
                len(dropped),
                ", ".join(i.decode(errors="replace") for i in dropped),
            )
        for job_id, why in corrupt:
            log.warning(
                "Redis store %s: job %s cannot be decoded (%s); moved to the DLQ as corrupt",
                self.prefix,
                job_id.decode(errors="replace"),
                why.decode(errors="replace"),
            )

    def _quarantine(self, jobs: Sequence[tuple[bytes, bytes, str]], now: float) -> None:
        """Move leased jobs Python could not decode to the DLQ (fenced by their tokens)."""
        args: list[str | bytes] = [codec.num(now)]
        for job_id, token, why in jobs:
            args += [job_id, token, why]
        self._run("quarantine", args)
        self._report_repairs([], [[i, why.encode()] for i, _, why in jobs])

    def _heartbeat(
        self, leases: Sequence[Lease], extend: float, now: float, lease_now: float | None
    ) -> HeartbeatResult:
        """Extend each held lease to ``now + extend``."""
        expires = now + extend
        args: list[str] = [codec.num(now), codec.num(expires)]
        for lease in leases:
            args += [lease.job_id, lease.token]
        statuses = self._run("heartbeat", args)
        renewed: dict[str, float] = {}
        lost: list[str] = []
        cancel: list[str] = []
        for lease, status in zip(leases, statuses, strict=True):
            if int(status) == 0:
                lost.append(lease.job_id)
                continue
            renewed[lease.job_id] = expires
            if int(status) == 2:
                cancel.append(lease.job_id)
        return HeartbeatResult(renewed, lost, cancel)

    def _fail(self, lease: Lease, failure: Failure, now: float) -> JobState:
        """Record the error; ``retrying`` until ``retry_at``, else ``failed``."""
        reply = self._run(
            "fail",
            [
                codec.num(now),
                lease.job_id,
                lease.token,
                codec.encode_error(failure.error),
                *_run_at_args(failure.retry_at),
                (failure.reason or FailureReason.EXHAUSTED).value,
            ],
        )
        return JobState(text(reply))

    def _release(self, lease: Lease, run_at: float | None, now: float) -> None:
        """Give the job back: pending, or scheduled when ``run_at`` is ahead."""
        target = JobState.SCHEDULED if run_at is not None and run_at > now else JobState.PENDING
        self._run(
            "release",
            [codec.num(now), lease.job_id, lease.token, target.value, *_run_at_args(run_at)],
        )

    def _finish_cancelled(self, lease: Lease, now: float) -> None:
        """End the held job as cancelled; dependents get their policy."""
        self._run("finish_cancelled", [codec.num(now), lease.job_id, lease.token])


def _run_at_args(run_at: float | None) -> tuple[str, str]:
    """A new ``run_at`` and its sort key as script arguments (``''`` twice: keep it)."""
    if run_at is None:
        return "", ""
    return codec.num(run_at), codec.sort_key(run_at)
