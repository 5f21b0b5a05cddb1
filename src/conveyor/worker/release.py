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
    pending: set[ClaimedJob] = field(default_factory=set)
    """Jobs still to release (id and the dead child's lease token)."""
    retry_at: float = 0.0
    backoff: float = 0.0

    def release(self, worker: str, claimed: list[ClaimedJob], now: float) -> list[str]:
        """Release ``claimed`` (a dead child's jobs other than its running one) now;
        what the store cannot take now is retried by :meth:`retry`. Returns the ids
        released."""
        self.pending.update(claimed)
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
        released: list[str] = []
        try:
            self._release_pending(released)
        except StoreUnavailable as exc:
            self.backoff = min(max(self.backoff * 2, RETRY_FIRST), RETRY_MAX)
            self.retry_at = now + self.backoff
            log.warning(
                "store unavailable releasing %d jobs of a dead worker (%s); retrying in %.1fs",
                len(self.pending),
                exc,
                self.backoff,
            )
            return released
        except StoreError as exc:
            log.warning(
                "could not release jobs %s of a dead worker (%s); their leases will expire",
                ", ".join(sorted(c.job_id for c in self.pending)),
                exc,
            )
            self.pending.clear()
            return released
        self.backoff = 0.0
        return released

    def _release_pending(self, released: list[str]) -> None:
        """One pass: read the jobs, release the ones still held under the dead child's
        token (appending their ids to ``released``). Jobs done with leave ``pending`` as
        they go, so a pass cut short by an outage resumes where it stopped."""
        ids = sorted({c.job_id for c in self.pending})
        jobs = {job.id: job for job in self.store.get_many(ids)}
        for claimed in sorted(self.pending, key=lambda c: (c.job_id, c.token)):
            job = jobs.get(claimed.job_id)
            held = job is not None and job.state is JobState.PROCESSING
            if job is not None and held and job.lease_token == claimed.token:
                try:
                    self.store.release(Lease(job, claimed.token, job.lease_expires_at or 0.0))
                    released.append(job.id)
                except LeaseLost:
                    log.debug("job %s was finished or rescued meanwhile", job.id)
                except StoreUnavailable:
                    raise  # keep it (and the rest) for the next attempt
                except StoreError as exc:
                    log.warning("could not release job %s (%s); its lease will expire", job.id, exc)
            self.pending.discard(claimed)
