"""Every exception Conveyor raises, in one tree.

::

    ConveyorError
    ├── ConfigurationError          bad settings, missing extra, unknown DSN scheme
    ├── InvalidJob                  refused at enqueue; nothing was written
    │   ├── SerializationError      argument that JSON cannot carry (names the path)
    │   ├── PayloadTooLarge         arguments above max_payload_bytes (or the decoded cap)
    │   ├── PayloadTooComplex       nesting deeper than the depth limit
    │   ├── InvalidOption           bad priority, queue, delay, tags, keys, attempts …
    │   ├── UnknownTask             no task registered under that name
    │   ├── DependencyCycle         the dependency graph has a cycle (names it)
    │   ├── UnknownDependency       depends_on names a job that does not exist
    │   └── IdempotencyConflict     same idempotency key, different payload
    ├── CorruptPayload              a stored frame failed its checks (never run)
    │   └── UnknownKey              frame encrypted under a key id not in the key ring
    ├── WaitTimeout                 JobHandle.wait: the job did not finish in time
    │                               (also a TimeoutError)
    ├── StoreError                  the store failed or refused an operation
    │   ├── StoreUnavailable        connection lost / database locked too long
    │   ├── IllegalTransition       a state change the state machine forbids
    │   ├── LeaseLost               fencing: the lease token no longer holds the job
    │   ├── JobNotFound             no job with that id (or id prefix)
    │   └── AmbiguousJobId          an id prefix that matches several jobs
    └── JobFailure                  base for errors raised *by* job code on purpose
        └── TaskTimeout             soft timeout fired inside the handler

Control flow that a handler raises on purpose is kept apart: :class:`Retry` and
:class:`Cancel` are not failures, and :class:`Interrupt` (a ``BaseException``) is
used to stop a handler from outside (soft timeout, forced cancellation).
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Root of every error Conveyor raises."""


class ConfigurationError(ConveyorError):
    """Settings are invalid or an optional dependency is missing."""


class InvalidJob(ConveyorError):
    """The job was refused at enqueue time; nothing was stored."""


class SerializationError(InvalidJob):
    """An argument cannot be carried as JSON; the message names its path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class PayloadTooLarge(InvalidJob):
    """The data is above a size limit; ``setting`` names the limit to raise."""

    def __init__(
        self,
        size: int,
        limit: int,
        *,
        what: str = "payload",
        setting: str = "max_payload_bytes",
    ) -> None:
        self.size = size
        self.limit = limit
        self.setting = setting
        super().__init__(
            f"{what}: {size} bytes, above the limit of {limit} bytes ({setting}); "
            "store large data elsewhere and pass a reference, or raise "
            f"{setting} (CONVEYOR_{setting.upper()})"
        )


class PayloadTooComplex(InvalidJob):
    """The arguments nest deeper than the depth limit."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        super().__init__(f"{path}: nesting deeper than {limit} levels; flatten the arguments")


class InvalidOption(InvalidJob):
    """A job or task option is out of range or malformed."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


class UnknownTask(InvalidJob):
    """No task is registered under the given name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        hint = f"; registered tasks: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"no task named {name!r}{hint}")


class DependencyCycle(InvalidJob):
    """The dependencies of the enqueued jobs form a cycle."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class UnknownDependency(InvalidJob):
    """A dependency names a job that is neither stored nor in the same batch."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"depends_on names job {job_id!r}, which does not exist")


class IdempotencyConflict(InvalidJob):
    """An idempotency key was reused with a different payload."""

    def __init__(self, key: str, existing_id: str) -> None:
        self.key = key
        self.existing_id = existing_id
        super().__init__(
            f"idempotency key {key!r} already belongs to job {existing_id} with a different "
            "payload; use a new key for a different job"
        )


class CorruptPayload(ConveyorError):
    """A stored frame failed its integrity checks; the job is quarantined, never run."""


class UnknownKey(CorruptPayload):
    """The frame was encrypted under a key id that is not in the key ring."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"payload encrypted with unknown key id {key_id!r}; add it to the key ring"
        )


class WaitTimeout(ConveyorError, TimeoutError):
    """``JobHandle.wait`` gave up: the job was not finished when the timeout passed.

    The job itself is unaffected; wait again, or read its state later.
    """

    def __init__(self, job_id: str, state: str, timeout: float) -> None:
        self.job_id = job_id
        self.state = state
        self.timeout = timeout
        super().__init__(
            f"job {job_id} is still {state} after waiting {timeout:g}s; "
            "wait longer, or check that a worker consumes its queue"
        )


class StoreError(ConveyorError):
    """The store failed or refused an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or stayed locked too long."""


class IllegalTransition(StoreError):
    """The state machine forbids this change of state."""

    def __init__(self, job_id: str, current: str, target: str) -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        super().__init__(f"job {job_id}: cannot go from {current} to {target}")


class LeaseLost(StoreError):
    """The lease token no longer holds the job; drop the result."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: lease lost (expired and taken over, or cancelled)")


class JobNotFound(StoreError):
    """No job has the given id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class AmbiguousJobId(StoreError):
    """An id prefix matches more than one job."""

    def __init__(self, prefix: str, candidates: list[str], *, more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates) + (", …" if more else "")
        super().__init__(
            f"id prefix {prefix!r} matches several jobs ({listed}); give more characters"
        )


class JobFailure(ConveyorError):
    """Base for failures that Conveyor raises inside a running job."""


class TaskTimeout(JobFailure):
    """The soft timeout of the job passed while the handler ran."""


class MemoryLimitExceeded(JobFailure):
    """The worker process's memory passed the job's limit while the handler ran
    (``max_memory`` or ``--max-memory-per-job``); the job was stopped and is retried
    per its policy."""


class Retry(Exception):
    """Raised by a handler to be run again after ``delay`` seconds.

    Counts as an attempt; when no attempt is left the job goes to the DLQ.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason or f"retry requested (delay={delay})")


class Cancel(Exception):
    """Raised by a handler to end the job as cancelled (e.g. after seeing the cancel flag)."""


class Interrupt(BaseException):
    """Stops a running handler from outside; derived from BaseException so that
    ``except Exception`` in job code does not swallow it."""


class SoftTimeoutInterrupt(Interrupt):
    """The soft timeout of the running job passed."""


class CancelInterrupt(Interrupt):
    """The running job was cancelled by force."""


class MemoryLimitInterrupt(Interrupt):
    """The running job passed its memory limit."""
