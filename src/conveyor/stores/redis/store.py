"""The Redis store: one Lua script per state change, sorted sets for order and due times.

Every write is one ``EVALSHA`` of a script in ``lua/`` (atomic on the server and fenced
by the lease token); reads are plain commands. All keys start with the DSN's ``prefix``
(default ``conveyor``). Semantics follow :mod:`conveyor.stores.base` and the reference
:class:`~conveyor.stores.memory.MemoryStore`. The client is created lazily and again
after a fork, so a child process never shares its parent's sockets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.commands.core import Script

from conveyor.clock import Clock
from conveyor.errors import (
    ConfigurationError,
    InvalidOption,
    LeaseLost,
    StoreUnavailable,
)
from conveyor.job import (
    EnqueueResult,
    FailureReason,
    Job,
    JobError,
    JobState,
    Lease,
    NewJob,
    StateCounts,
)
from conveyor.stores import controls, redact
from conveyor.stores.base import (
    CancelResult,
    Capabilities,
    ClaimParams,
    Completion,
    HeartbeatResult,
    JobQuery,
    NodeInfo,
    Page,
    PruneParams,
    PruneResult,
    Record,
    RescueParams,
    RescueResult,
    StageResult,
    StoreInfo,
)
from conveyor.stores.enqueue_plan import plan_enqueue, reads_for
from conveyor.stores.node_records import node_from_json, node_params
from conveyor.stores.records import check_record
from conveyor.stores.redis import codec, records, scripts
from conveyor.stores.redis.enqueue import (
    ENQUEUE_TRIES,
    decode_observation,
    encode_plan,
    encode_reads,
)
from conveyor.stores.redis.prune import count_prunable
from conveyor.stores.selection import distinct_leases, matches, page_bounds, unique_ids
from conveyor.stores.server_clock import ServerClock

log = logging.getLogger("conveyor.stores.redis")

S = JobState
SCHEMA_VERSION = 1
DEFAULT_PREFIX = "conveyor"
# Clients inherited through fork: never used or closed in the child (closing could disturb
# the parent's sockets); kept referenced so garbage collection leaves them alone too.
_INHERITED: list[redis.Redis] = []
_ERROR_CODES = (
    "CONVEYOR_DUPLICATE_ID",
    "CONVEYOR_LEASE_LOST",
)


def parse_dsn(dsn: str) -> tuple[str, str]:
    """Split ``redis://…?prefix=p`` into (URL for redis-py without ``prefix``, prefix)."""
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ConfigurationError(f"not a Redis DSN: {parts.scheme}://…")
    query = parse_qsl(parts.query, keep_blank_values=True)
    allowed = dsn_parameters()
    for key, _ in query:
        if key not in allowed:
            raise ConfigurationError(
                f"unknown Redis DSN parameter {key!r} in {redact(dsn)!r}; "
                f"allowed: {', '.join(allowed)}"
            )
    prefixes = [value for key, value in query if key == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        raise ConfigurationError("the Redis DSN's prefix parameter must not be empty")
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    url = urlunsplit(parts._replace(query=rest))
    # redis-py leaves parse_url unannotated; the cast states what it takes and returns.
    parse_url = cast("Callable[[str], dict[str, Any]]", redis.connection.parse_url)
    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"Redis DSN {redact(dsn)!r}: {exc}") from None
    return url, prefix


_CONNECTION_PARAMETERS = (
    "username",
    "password",
    "client_name",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
)
"""Connection keywords redis-py accepts from a URL besides those it parses itself."""


def dsn_parameters() -> list[str]:
    """Query parameters a Redis DSN may hold: Conveyor's ``prefix`` and redis-py's own."""
    parsed = redis.connection.URL_QUERY_ARGUMENT_PARSERS
    return ["prefix", *sorted({*parsed, *_CONNECTION_PARAMETERS})]


def store_exists(dsn: str) -> bool:
    """Whether a Conveyor store lives under the DSN's prefix (its ``{prefix}:schema`` key),
    read without writing; for commands that must not create a store.

    Raises:
        StoreUnavailable: Redis cannot be reached.
    """
    url, prefix = parse_dsn(dsn)
    client = redis.Redis.from_url(url)
    try:
        with _guard():
            return bool(client.exists(f"{prefix}:schema"))
    finally:
        client.close()


def safe_location(url: str, prefix: str) -> str:
    """The URL without password, with the prefix, for ``conveyor info``."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}?prefix={prefix}"


def durability_text(appendonly: str | None, appendfsync: str | None) -> tuple[str, bool]:
    """The durability level from the AOF settings, and whether it is the strongest."""
    if appendonly is None:
        return "unknown (CONFIG GET is not allowed; check appendonly/appendfsync)", False
    if appendonly != "yes":
        return (
            "not durable (no AOF): jobs since the last RDB snapshot are lost if Redis stops",
            False,
        )
    if appendfsync == "always":
        return "fully durable (AOF, appendfsync always)", True
    if appendfsync == "everysec":
        return (
            "up to 1 s of acknowledged jobs may be lost on power loss (AOF everysec)",
            False,
        )
    return (
        f"acknowledged jobs may be lost on power loss (AOF appendfsync {appendfsync}; "
        "the OS decides when to flush)",
        False,
    )


def _check_policy(policy: str | None) -> None:
    if policy is not None and policy != "noeviction":
        raise ConfigurationError(
            f"Redis maxmemory-policy is {policy!r}, which can evict keys and silently drop "
            "jobs; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction "
            "and in redis.conf) to use Redis as a Conveyor store"
        )


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Connection problems become StoreUnavailable; script errors become Conveyor errors."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        _raise_script_error(exc)
        if isinstance(exc, redis.ReadOnlyError) or str(exc).startswith("OOM"):
            raise StoreUnavailable(f"Redis refused the write: {exc}") from exc
        raise


def _raise_script_error(exc: redis.ResponseError) -> None:
    message = str(exc)
    for code in _ERROR_CODES:
        at = message.find(code)
        if at < 0:
            continue
        args = message[at + len(code) :].strip().split(" ", 1)
        if code == "CONVEYOR_DUPLICATE_ID":
            raise InvalidOption(
                "id", f"a job with id {args[0]} already exists (ids must be unique)"
            ) from exc
        raise LeaseLost(args[0]) from exc


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern (the DSN's prefix may hold ``*``)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _oldest_pending(run_at: bytes | str | None, score: float) -> float:
    """The head job's exact ``run_at``, or its index score when the field is unreadable."""
    try:
        return float(run_at) if run_at is not None else float(score)
    except ValueError:
        return float(score)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """A Store in one Redis database, under a key prefix; shared by many processes."""

    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=True)

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None):
        self.url = url
        self.prefix = prefix
        self.clock: Clock = clock or ServerClock(self._server_time)
        self._lock = threading.Lock()
        self._pid = -1
        self._marked_pid = -1
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Script] = {}
        self._durability: str | None = None
        self._policy: str | None = None

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> RedisStore:
        """Open ``redis://[:password@]host:port/db?prefix=name`` (also ``rediss://``)."""
        url, prefix = parse_dsn(dsn)
        return cls(url, prefix=prefix, clock=clock)

    # connection ----------------------------------------------------------------------------
    def _server_time(self) -> float:
        """Redis's clock (``TIME``), for :class:`ServerClock`."""
        seconds, micros = self._redis().time()
        return float(seconds) + float(micros) / 1_000_000

    def _redis(self) -> redis.Redis:
        """The client of this process, created (and checked) on first use after a fork."""
        pid = os.getpid()
        client = self._client
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is not None and self._pid == pid:
                return self._client
            if self._client is not None:
                _INHERITED.append(self._client)
                self._client = None
            client = redis.Redis.from_url(self.url, decode_responses=False)
            with _guard():
                self._check_server(client)
            self._scripts = {
                name: client.register_script(text) for name, text in scripts.all_sources().items()
            }
            self._client = client
            self._pid = pid
            return client

    def _check_server(self, client: redis.Redis) -> None:
        """Refuse eviction policies; work out (and log) the durability level."""
        settings: dict[str, str | None] = {}
        for name in ("maxmemory-policy", "appendonly", "appendfsync"):
            try:
                reply = client.config_get(name)
            except redis.ResponseError:
                settings[name] = None
                continue
            value = {_text(k): _text(v) for k, v in reply.items()}.get(name)
            settings[name] = value
        self._policy = settings["maxmemory-policy"]
        _check_policy(self._policy)
        if self._policy is None:
            log.warning(
                "Redis store %s: CONFIG GET is not allowed, so maxmemory-policy cannot be "
                "checked; make sure it is noeviction or jobs may be evicted",
                self.prefix,
            )
        text, strongest = durability_text(settings["appendonly"], settings["appendfsync"])
        self._durability = text
        if strongest:
            log.info("Redis store %s: durability is %s", self.prefix, text)
        else:
            log.warning("Redis store %s: durability is %s", self.prefix, text)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _run(self, name: str, args: Sequence[str | bytes | int | float]) -> Any:
        client = self._redis()
        with _guard():
            return self._scripts[name](keys=[], args=[self.prefix, *args], client=client)

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    # lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> int:
        """Record the layout version (``{prefix}:schema``); idempotent."""
        client = self._redis()
        with _guard():
            client.set(self._key("schema"), str(SCHEMA_VERSION), nx=True)
            stored = int(client.get(self._key("schema")) or SCHEMA_VERSION)
        if stored > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the Redis keys under {self.prefix!r} use layout version {stored}, newer than "
                f"this Conveyor ({SCHEMA_VERSION}); upgrade Conveyor"
            )
        return SCHEMA_VERSION

    def close(self) -> None:
        """Drop this process's connections; safe to call twice."""
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                if self._pid == os.getpid():
                    client.close()
                else:
                    _INHERITED.append(client)
            self._pid = -1

    def info(self) -> StoreInfo:
        """Driver, location (no password), durability from the AOF settings, and how many
        bad entries claims have repaired (stale index entries, corrupt jobs quarantined)."""
        client = self._redis()
        with _guard():
            repairs = {_text(k): _text(v) for k, v in client.hgetall(self._key("repairs")).items()}
        return StoreInfo(
            "redis",
            safe_location(self.url, self.prefix),
            self._durability or "unknown",
            SCHEMA_VERSION,
            {
                "maxmemory-policy": self._policy or "unknown",
                "prefix": self.prefix,
                "repaired index entries": str(
                    int(repairs.get("index", "0")) + int(repairs.get("missing", "0"))
                ),
                "quarantined corrupt jobs": repairs.get("corrupt", "0"),
            },
        )

    def now(self) -> float:
        """The injected clock."""
        return self.clock.now()

    # producers -----------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Plan the batch in Python from one read, then write it in one script.

        The script writes only if what the plan read is unchanged, else we plan again.
        """
        if connection is not None:
            raise ConfigurationError(
                "the Redis store cannot join a database transaction; use the postgresql store"
            )
        if not jobs:
            return []
        if self._marked_pid != os.getpid():
            # the first write creates the store, as SQLite's first write creates its file:
            # read commands look for the layout key before they open a prefix
            self.migrate()
            self._marked_pid = os.getpid()
        t = self._now(now)
        reads = reads_for(jobs)
        asked = encode_reads(reads)
        for _ in range(ENQUEUE_TRIES):
            observed: list[bytes] = self._run("enqueue", ["read", *asked]) if reads else []
            plan = plan_enqueue(jobs, t, decode_observation(reads, observed))
            if self._run("enqueue", ["write", *asked, *observed, *encode_plan(plan, t)]):
                return plan.results
        raise StoreUnavailable(
            f"enqueue: the keys or dependencies of this batch changed {ENQUEUE_TRIES} times "
            "while it was being planned; retry the enqueue"
        )

    # consumers -----------------------------------------------------------------------------
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
        return [_text(i) for i in lost_raw], leases

    def _report_repairs(self, dropped: Sequence[bytes], corrupt: Sequence[list[bytes]]) -> None:
        """Log what a claim repaired: stale pending entries dropped, corrupt jobs moved to
        the DLQ (counted in Redis too, see :meth:`info`)."""
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

    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``limit`` pending jobs, queues in the given order."""
        return self._ack_claim([], params, self._now(params.now))[1]

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark held jobs completed and release their dependents (one script)."""
        if not completions:
            return []
        return self._ack_claim(completions, None, self._now(now))[0]

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Acknowledge and take the next jobs in one script call."""
        return self._ack_claim(completions, params, self._now(params.now))

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend each held lease to ``now + extend``."""
        leases = distinct_leases(leases)
        t = self._now(now)
        expires = t + extend
        if not leases:
            return HeartbeatResult({}, [], [])
        args: list[str] = [codec.num(t), codec.num(expires)]
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

    def fail(
        self,
        lease: Lease,
        error: JobError,
        *,
        retry_at: float | None,
        reason: FailureReason | None = None,
        now: float | None = None,
    ) -> JobState:
        """Record the error; ``retrying`` until ``retry_at``, else ``failed``."""
        t = self._now(now)
        reply = self._run(
            "fail",
            [
                codec.num(t),
                lease.job_id,
                lease.token,
                codec.encode_error(error),
                "" if retry_at is None else codec.num(retry_at),
                "" if retry_at is None else codec.sort_key(retry_at),
                (reason or FailureReason.EXHAUSTED).value,
            ],
        )
        return S(_text(reply))

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give the job back: pending, or scheduled when ``run_at`` is ahead."""
        t = self._now(now)
        target = S.SCHEDULED if run_at is not None and run_at > t else S.PENDING
        self._run(
            "release",
            [
                codec.num(t),
                lease.job_id,
                lease.token,
                target.value,
                "" if run_at is None else codec.num(run_at),
                "" if run_at is None else codec.sort_key(run_at),
            ],
        )

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End the held job as cancelled; dependents get their policy."""
        self._run("finish_cancelled", [codec.num(self._now(now)), lease.job_id, lease.token])

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Wait on the ``{prefix}:wake`` channel (every waiter hears every notification)."""
        client = self._redis()
        deadline = time.monotonic() + max(timeout, 0.0)
        with _guard():
            # redis-py annotates pubsub() in some releases and not in others; going through
            # Any keeps the call type-checked the same way whatever release is installed.
            open_pubsub: Any = client.pubsub
            pubsub = open_pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._key("wake"))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    if pubsub.get_message(timeout=left) is not None:
                        return True
            finally:
                pubsub.close()

    # maintenance -------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Promote due scheduled/retrying jobs; report the next due time."""
        promoted, next_due = self._run("stage", [codec.num(self._now(now)), str(limit)])
        return StageResult(int(promoted), None if next_due is None else float(next_due))

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Retry or fail processing jobs whose lease expired.

        Expiry is judged by Redis's clock (``TIME`` in the script) unless a clock or
        ``now`` was injected."""
        server_judged = params.now is None and isinstance(self.clock, ServerClock)
        t = self._now(params.now)
        retry_at = t + params.retry_delay
        retried, failed = self._run(
            "rescue",
            [
                codec.num(t),
                str(params.limit),
                str(params.max_rescues),
                codec.num(retry_at),
                codec.sort_key(retry_at),
                "1" if server_judged else "0",
            ],
        )
        return RescueResult([_text(i) for i in retried], [_text(i) for i in failed])

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete terminal jobs past their retention, orphaned key holds, expired records."""
        t = self._now(params.now)

        def cutoff(age: float | None) -> str:
            return "" if age is None else codec.num(t - age)

        cutoffs = {
            "completed": cutoff(params.completed_after),
            "failed": cutoff(params.failed_after),
            "cancelled": cutoff(params.cancelled_after),
        }
        if params.dry_run:
            with _guard():
                return PruneResult(count_prunable(self._redis(), self._key, cutoffs), 0)
        jobs, orphans = self._run(
            "prune",
            [
                codec.num(t),
                str(params.limit),
                *cutoffs.values(),
                "1" if params.sweep else "0",
                *params.job_records,
            ],
        )
        return PruneResult(int(jobs), int(orphans))

    # management --------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id."""
        found = self.get_many([job_id])
        return found[0] if found else None

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in order, unknown ids skipped (one pipelined round trip)."""
        if not job_ids:
            return []
        client = self._redis()
        with _guard():
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

    def _candidates(self, query: JobQuery) -> list[str]:
        """Ids the indexes narrow the query to (the rest is filtered in Python)."""
        if query.ids is not None:
            return unique_ids(query.ids)
        client = self._redis()
        with _guard():
            if query.states is not None or query.queues is not None:
                pipe = client.pipeline(transaction=True)
                for state in query.states or ():
                    pipe.smembers(self._key("state", S(state).value))
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
                return [_text(i) for i in ids or ()]
            low = "-inf" if query.since is None else codec.num(query.since)
            high = "+inf" if query.until is None else f"({codec.num(query.until)}"
            return [_text(i) for i in client.zrangebyscore(self._key("created"), low, high)]

    def search(self, query: JobQuery) -> Page:
        """Narrow by the index sets, filter, order by created_at then id, and page."""
        limit, offset = page_bounds(query)
        found = [j for j in self.get_many(self._candidates(query)) if matches(j, query)]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Counts per queue and state from the counters; oldest pending from ``ready``."""
        client = self._redis()
        with _guard():
            queues = sorted(_text(q) for q in client.smembers(self._key("queues")))
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
                    entry.counts[_text(state)] = int(count)
            if not entry.counts:
                continue
            if oldest:
                entry.oldest_pending_at = _oldest_pending(
                    client.hget(self._key("job", _text(oldest[0][0])), "run_at"), oldest[0][1]
                )
            out.append(entry)
        return out

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        ids = unique_ids(job_ids)
        if not ids:
            return CancelResult([], [], [])
        t = codec.num(self._now(now))
        cancelled, requested, skipped = self._run(
            "manage", [t, "cancel", "1" if force else "0", "", *ids]
        )
        return CancelResult(
            [_text(i) for i in cancelled],
            [_text(i) for i in requested],
            [_text(i) for i in skipped],
        )

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Failed/cancelled -> pending with fresh attempts (errors kept)."""
        ids = unique_ids(job_ids)
        if not ids:
            return []
        t = self._now(now)
        moved = self._run("manage", [codec.num(t), "retry", codec.num(t), codec.sort_key(t), *ids])
        return [_text(i) for i in moved]

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete non-processing jobs; dependents of unfinished ones get their policy."""
        ids = unique_ids(job_ids)
        if not ids:
            return 0
        t = codec.num(self.clock.now())
        return int(self._run("manage", [t, "delete", "", "", *ids]))

    # job controls ------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs (one script: atomic, claim order re-filed)."""
        value = controls.check_priority(priority)
        return self._change_waiting("priority", str(value), job_ids)

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue`` (one script: atomic, every index follows)."""
        target = controls.check_queue(queue)
        return self._change_waiting("queue", target, job_ids)

    def _change_waiting(self, op: str, value: str, job_ids: Sequence[str]) -> list[str]:
        ids = unique_ids(job_ids)
        if not ids:
            return []
        return [_text(i) for i in self._run("controls", [op, value, *ids])]

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``, by ``SCAN MATCH`` over the job keys.

        Redis keeps no ordered index of ids, so this walks the key space (a few hundred
        round trips per million keys): fine for a command line, not for a hot path."""
        start = controls.normalize_prefix(prefix)
        controls.check_find_limit(limit)
        head = self._key("job", "")
        found: set[str] = set()
        client = self._redis()
        with _guard():
            for key in client.scan_iter(match=f"{_glob_escape(head)}{start}*", count=1000):
                found.add(_text(key)[len(head) :])
                if len(found) >= limit:
                    break
        return sorted(found)[:limit]

    # nodes -------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's record, its ``heartbeat_at`` set to ``now``."""
        t = self._now(now)
        node_id, _started, _beat, data = node_params(node, heartbeat_at=t)
        client = self._redis()
        with _guard():
            pipe = client.pipeline(transaction=True)
            pipe.hset(self._key("nodes"), node_id, data)
            pipe.zadd(self._key("node_heartbeats"), {node_id: t})
            pipe.execute()

    def remove_node(self, node_id: str) -> None:
        """Forget the node; unknown ids are ignored."""
        client = self._redis()
        with _guard():
            pipe = client.pipeline(transaction=True)
            pipe.hdel(self._key("nodes"), node_id)
            pipe.zrem(self._key("node_heartbeats"), node_id)
            pipe.execute()

    def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest ``started_at`` first (then by id)."""
        client = self._redis()
        with _guard():
            raw = client.hvals(self._key("nodes"))
        nodes = [node_from_json(_text(item)) for item in raw]
        return sorted(nodes, key=lambda n: (n.started_at, n.id))

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Forget nodes whose heartbeat is before ``now - older_than``."""
        cutoff = self._now(now) - older_than
        return int(self._run("prune_nodes", [codec.num(cutoff)]))

    # records -----------------------------------------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The live record, or None (expiry judged by the store's clock)."""
        check_record(namespace, key)
        client = self._redis()
        with _guard():
            packed = client.hget(records.hash_key(self.prefix, namespace), records.encode(key))
        return records.live(namespace, key, packed, self._now(now))

    def put_record(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        expect_version: int | None,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> Record | None:
        """Compare-and-set in one script."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        t = self._now(now)
        version = self._run(
            "records",
            [
                "put",
                records.encode(namespace),
                records.encode(key),
                codec.num(t),
                value,
                "" if expect_version is None else str(expect_version),
                "" if expires_at is None else codec.num(expires_at),
            ],
        )
        if version is None:
            return None
        expiry = None if expires_at is None else float(expires_at)
        return Record(namespace, key, value, int(version), expiry)

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""
        check_record(namespace, key, expect_version=expect_version)
        expect = "" if expect_version is None else str(expect_version)
        reply = self._run(
            "records", ["delete", records.encode(namespace), records.encode(key), expect]
        )
        return bool(int(reply))

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of the namespace whose key starts with ``prefix``, by key."""
        check_record(namespace, prefix or "-")
        client = self._redis()
        with _guard():
            fields = client.hgetall(records.hash_key(self.prefix, namespace))
        return records.live_in(namespace, fields, prefix, self._now(now))
