"""The Redis store's read model: jobs by id, search, stats and id lookup.

Reads are plain commands, pipelined; they never run a script and never crash on a job
that cannot be decoded (:func:`conveyor.stores.redis.codec.read_job` shows it as a
corrupt placeholder).
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.job import Job, JobState, StateCounts
from conveyor.stores.base import JobQuery, Page
from conveyor.stores.redis import codec
from conveyor.stores.redis.codec import text, texts
from conveyor.stores.redis.connection import RedisConnection, guard
from conveyor.stores.selection import matches, unique_ids


class RedisReads(RedisConnection):
    """Reads over the job hashes and the index sets."""

    def _get(self, job_id: str) -> Job | None:
        """One job by id."""
        found = self._get_many([job_id])
        return found[0] if found else None

    def _get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in order, unknown ids skipped (one pipelined round trip)."""
        client = self._redis()
        with guard():
            pipe = client.pipeline(transaction=True)
            for job_id in job_ids:
                pipe.hgetall(self._key("job", job_id))
                pipe.lrange(self._key("errors", job_id), 0, -1)
            replies = pipe.execute()
        jobs = []
        for job_id, fields, errors in zip(job_ids, replies[::2], replies[1::2], strict=True):
            if fields:
                jobs.append(codec.read_job(job_id, fields, errors))
        return jobs

    def _search(self, query: JobQuery, limit: int, offset: int) -> Page:
        """Narrow by the index sets, filter, order by created_at then id, and page."""
        ids = self._candidates(query)
        found = [j for j in self._get_many(ids) if matches(j, query)] if ids else []
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def _candidates(self, query: JobQuery) -> list[str]:
        """Ids the indexes narrow the query to (the rest is filtered in Python)."""
        if query.ids is not None:
            return unique_ids(query.ids)
        client = self._redis()
        with guard():
            if query.states is not None or query.queues is not None:
                pipe = client.pipeline(transaction=True)
                for state in query.states or ():
                    pipe.smembers(self._key("state", JobState(state).value))
                for queue in query.queues or ():
                    pipe.smembers(self._key("queue", queue))
                replies = pipe.execute()
                by_state: set[bytes] | None = None
                if query.states is not None:
                    by_state = set().union(*replies[: len(query.states)])
                    replies = replies[len(query.states) :]
                ids = by_state
                if query.queues is not None:
                    by_queue: set[bytes] = set().union(*replies)
                    ids = by_queue if ids is None else ids & by_queue
                return texts(ids or ())
            low = "-inf" if query.since is None else codec.num(query.since)
            high = "+inf" if query.until is None else f"({codec.num(query.until)}"
            return texts(client.zrangebyscore(self._key("created"), low, high))

    def _stats(self, now: float) -> list[StateCounts]:
        """Counts per queue and state from the counters; oldest pending from ``ready``."""
        client = self._redis()
        with guard():
            queues = sorted(texts(client.smembers(self._key("queues"))))
            pipe = client.pipeline(transaction=True)
            for queue in queues:
                pipe.hgetall(self._key("counts", queue))
                pipe.zrange(self._key("q", queue, "ready"), 0, 0, withscores=True)
            replies = pipe.execute()
        out = []
        for queue, counts, oldest in zip(queues, replies[::2], replies[1::2], strict=True):
            entry = StateCounts(queue)
            for state, count in counts.items():
                if int(count) > 0:
                    entry.counts[text(state)] = int(count)
            if not entry.counts:
                continue
            if oldest:
                entry.oldest_pending_at = _oldest_pending(
                    client.hget(self._key("job", text(oldest[0][0])), "run_at"), oldest[0][1]
                )
            out.append(entry)
        return out

    def _find_ids(self, prefix: str, limit: int) -> list[str]:
        """Ids starting with ``prefix``, by ``SCAN MATCH`` over the job keys.

        Redis keeps no ordered index of ids, so this walks the key space (a few hundred
        round trips per million keys): fine for a command line, not for a hot path."""
        head = self._key("job", "")
        found: set[str] = set()
        client = self._redis()
        with guard():
            for key in client.scan_iter(match=f"{_glob_escape(head)}{prefix}*", count=1000):
                found.add(text(key)[len(head) :])
                if len(found) >= limit:
                    break
        return sorted(found)[:limit]


def _glob_escape(literal: str) -> str:
    """``literal`` as a literal in a ``SCAN MATCH`` pattern (the prefix may hold ``*``)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in literal)


def _oldest_pending(run_at: bytes | str | None, score: float) -> float:
    """The head job's exact ``run_at``, or its index score when the field is unreadable."""
    try:
        return float(run_at) if run_at is not None else float(score)
    except ValueError:
        return float(score)
