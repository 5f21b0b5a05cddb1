"""The Redis store's management commands: cancel, retry, delete, reprioritize, move.

Each takes checked, distinct ids and is one atomic script (``manage.lua`` for the state
changes, ``controls.lua`` for the waiting jobs' priority and queue).
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.stores.base import CancelResult
from conveyor.stores.redis import codec
from conveyor.stores.redis.codec import texts
from conveyor.stores.redis.connection import RedisConnection


class RedisManage(RedisConnection):
    """Operators' changes to jobs by id."""

    def _cancel(self, job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        cancelled, requested, skipped = self._run(
            "manage", [codec.num(now), "cancel", "1" if force else "0", "", *job_ids]
        )
        return CancelResult(texts(cancelled), texts(requested), texts(skipped))

    def _retry(self, job_ids: Sequence[str], now: float) -> list[str]:
        """Failed/cancelled -> pending with fresh attempts (errors kept)."""
        t = codec.num(now)
        return texts(self._run("manage", [t, "retry", t, codec.sort_key(now), *job_ids]))

    def _delete(self, job_ids: Sequence[str], now: float) -> int:
        """Delete non-processing jobs; dependents of unfinished ones get their policy."""
        return int(self._run("manage", [codec.num(now), "delete", "", "", *job_ids]))

    def _reprioritize(self, job_ids: Sequence[str], priority: int, now: float) -> list[str]:
        """Set the priority of waiting jobs (one script: atomic, claim order re-filed)."""
        return texts(self._run("controls", ["priority", str(priority), *job_ids]))

    def _move(self, job_ids: Sequence[str], queue: str, now: float) -> list[str]:
        """Move waiting jobs to ``queue`` (one script: atomic, every index follows)."""
        return texts(self._run("controls", ["queue", queue, *job_ids]))
