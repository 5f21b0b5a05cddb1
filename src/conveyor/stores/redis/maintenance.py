"""The Redis store's maintenance: staging due jobs, rescuing expired leases, pruning.

Each is one bounded script run (``stage.lua``, ``rescue.lua``, ``prune.lua``); a prune's
dry run only reads (:mod:`conveyor.stores.redis.prune`).
"""

from __future__ import annotations

from conveyor.stores.base import (
    PruneParams,
    PruneResult,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.redis import codec
from conveyor.stores.redis.codec import texts
from conveyor.stores.redis.connection import RedisConnection, guard
from conveyor.stores.redis.prune import count_prunable
from conveyor.stores.server_clock import ServerClock


class RedisMaintenance(RedisConnection):
    """Staging, rescue and prune, one script each."""

    def _stage_due(self, now: float, limit: int) -> StageResult:
        """Promote due scheduled/retrying jobs; report the next due time."""
        promoted, next_due = self._run("stage", [codec.num(now), str(limit)])
        return StageResult(int(promoted), None if next_due is None else float(next_due))

    def _rescue_expired(
        self, params: RescueParams, now: float, lease_now: float | None
    ) -> RescueResult:
        """Retry or fail processing jobs whose lease expired.

        Expiry is judged by Redis's clock (``TIME`` in the script) unless a clock or
        ``now`` was injected."""
        server_judged = lease_now is None and isinstance(self.clock, ServerClock)
        retry_at = now + params.retry_delay
        retried, failed = self._run(
            "rescue",
            [
                codec.num(now),
                str(params.limit),
                str(params.max_rescues),
                codec.num(retry_at),
                codec.sort_key(retry_at),
                "1" if server_judged else "0",
            ],
        )
        return RescueResult(texts(retried), texts(failed))

    def _prune(self, params: PruneParams, now: float) -> PruneResult:
        """Delete terminal jobs past their retention, orphaned key holds, expired records."""

        def cutoff(age: float | None) -> str:
            return "" if age is None else codec.num(now - age)

        cutoffs = {
            "completed": cutoff(params.completed_after),
            "failed": cutoff(params.failed_after),
            "cancelled": cutoff(params.cancelled_after),
        }
        if params.dry_run:
            with guard():
                return PruneResult(count_prunable(self._redis(), self._key, cutoffs), 0)
        jobs, orphans = self._run(
            "prune",
            [
                codec.num(now),
                str(params.limit),
                *cutoffs.values(),
                "1" if params.sweep else "0",
                *params.job_records,
            ],
        )
        return PruneResult(int(jobs), int(orphans))
