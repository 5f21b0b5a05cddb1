"""Giving back the jobs a dead child had claimed but was not running (G9).

The supervisor hands over a dead child's published batch (without the running job,
which it records as a crash itself). Each job still held under the child's lease
token goes back to ``pending`` at once, with no attempt used and no rescue counted.
While the store is unavailable the releases wait and are retried on later ticks,
with a growing back-off: a job left to wait out its lease would have a crash counted
against it by the rescuer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from conveyor.errors import LeaseLost, StoreError, StoreUnavailable
from conveyor.job import JobState, Lease
from conveyor.stores.base import Store
from conveyor.worker.slot import ClaimedJob

log = logging.getLogger("conveyor.supervisor")

RETRY_FIRST = 0.5
RETRY_MAX = 5.0
"""Seconds between attempts while the store is unavailable: doubles up to the longest."""


@dataclass(slots=True)
class BatchReleaser:
    """Releases dead children's unstarted jobs, retrying through store outages."""

    store: Store
    pending: dict[str, ClaimedJob] = field(default_factory=dict)
    """Jobs still to release, by id."""
    retry_at: float = 0.0
    backoff: float = 0.0

    def release(self, worker: str, claimed: list[ClaimedJob], now: float) -> list[str]:
        """Release ``claimed`` (a dead child's jobs other than its running one) now;
        what the store cannot take now is retried by :meth:`retry`. Returns the ids
        released."""
        for job in claimed:
            self.pending[job.job_id] = job
        released = self._attempt(now)
        if released:
            log.info("released %d jobs claimed but not started by worker %s", len(released), worker)
        return released

    def retry(self, now: float) -> list[str]:
        """Try the waiting releases again once their back-off has passed."""
        if not self.pending or now < self.retry_at:
            return []
        released = self._attempt(now)
        if released:
            log.info("released %d jobs of dead workers after a store outage", len(released))
        return released

    def _attempt(self, now: float) -> list[str]:
        try:
            released = self._release_pending()
        except StoreUnavailable as exc:
            self.backoff = min(max(self.backoff * 2, RETRY_FIRST), RETRY_MAX)
            self.retry_at = now + self.backoff
            log.warning(
                "store unavailable releasing %d jobs of a dead worker (%s); retrying in %.1fs",
                len(self.pending),
                exc,
                self.backoff,
            )
            return []
        except StoreError as exc:
            log.warning(
                "could not release jobs %s of a dead worker (%s); their leases will expire",
                ", ".join(self.pending),
                exc,
            )
            self.pending.clear()
            return []
        self.backoff = 0.0
        return released

    def _release_pending(self) -> list[str]:
        """One pass: read the jobs, release the ones still held under the dead child's
        token. Jobs done with leave ``pending`` as they go, so a pass cut short by an
        outage resumes where it stopped."""
        jobs = {job.id: job for job in self.store.get_many(list(self.pending))}
        released: list[str] = []
        for job_id, claimed in list(self.pending.items()):
            job = jobs.get(job_id)
            if job is None or job.state is not JobState.PROCESSING:
                del self.pending[job_id]
                continue
            if job.lease_token != claimed.token:
                del self.pending[job_id]
                continue
            try:
                self.store.release(Lease(job, claimed.token, job.lease_expires_at or 0.0))
            except LeaseLost:
                del self.pending[job_id]
                continue
            except StoreUnavailable:
                raise
            except StoreError as exc:
                log.warning("could not release job %s (%s); its lease will expire", job_id, exc)
                del self.pending[job_id]
                continue
            del self.pending[job_id]
            released.append(job_id)
        return released
