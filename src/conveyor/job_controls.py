"""Bulk job controls by id: retry, cancel, purge, prioritize and move, and id prefixes.

Each operation returns a :class:`JobsChanged`: the ids it changed, and every id it left
alone with the reason, so the command line and the App report the
same thing. Ids may be unique prefixes (like git's): :func:`resolve_id` turns one into a
full id (:class:`JobNotFound` when nothing matches); :func:`resolve_ids` does it for the
bulk operations, which report an id or prefix that matches nothing as skipped. A prefix
that matches several jobs is always an error: the caller cannot have meant all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from conveyor.errors import AmbiguousJobId, InvalidOption, JobNotFound
from conveyor.ids import is_job_id
from conveyor.job import JobState
from conveyor.stores.base import JobQuery, Store
from conveyor.stores.controls import check_queue, normalize_prefix
from conveyor.validation import priority as check_priority

S = JobState

BATCH_SIZE = 500
"""Ids passed per store call."""

PAGE_SIZE = 500
"""Jobs read per search call while collecting the ids of a query."""

CANDIDATES_SHOWN = 5
"""Candidates an ambiguous prefix error lists."""

UNKNOWN = "unknown id"

Selection = Sequence[str] | JobQuery
"""Jobs to act on: ids (or unique prefixes), or a query whose every match is taken."""

_MOVABLE_TEXT = "only pending, scheduled, retrying or blocked jobs can be {verb}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A job an operation left alone, and why."""

    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobsChanged:
    """What a bulk operation did."""

    action: str
    """``retry``, ``cancel``, ``purge``, ``prioritize`` or ``move``."""
    changed: list[str]
    """Ids now retried, cancelled, deleted, re-prioritized or moved."""
    skipped: list[Skipped]
    """Ids left alone, each with the reason."""
    requested: list[str] = field(default_factory=list)
    """Cancel only: processing jobs asked to stop (they see it at their next heartbeat)."""

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        data: dict[str, object] = {
            "action": self.action,
            "changed": list(self.changed),
            "skipped": [{"id": s.id, "reason": s.reason} for s in self.skipped],
        }
        if self.action == "cancel":
            data["requested"] = list(self.requested)
        return data


# ids ---------------------------------------------------------------------------------------
def resolve_id(store: Store, text: str) -> str:
    """The full id ``text`` names: itself if it is a full id, else the one job it prefixes.

    Raises:
        JobNotFound: No job id starts with ``text`` (or it cannot start an id at all).
        AmbiguousJobId: Several do (the error lists some of them).
    """
    found = _matches(store, text)
    if not found:
        raise JobNotFound(text)
    return found[0]


def resolve_ids(store: Store, texts: Sequence[str]) -> list[str]:
    """Each of ``texts`` as a full id, duplicates dropped; for the bulk operations.

    A text that names no job is kept as given: the operation then reports it as skipped
    (``unknown id``), as it does an unknown full id.

    Raises:
        InvalidOption: ``texts`` is one string, not a list (its letters would be read as
            one-letter prefixes, and act on whichever jobs they name).
        AmbiguousJobId: A prefix matches several jobs.
    """
    if isinstance(texts, str):
        raise InvalidOption(
            "jobs",
            f"expected a list of job ids or prefixes, got the string {texts[:80]!r}; "
            f"pass [{texts[:80]!r}]",
        )
    resolved: list[str] = []
    for text in texts:
        found = _matches(store, text)
        resolved.append(found[0] if found else text)
    return list(dict.fromkeys(resolved))


def _matches(store: Store, text: str) -> list[str]:
    """``[full id]`` for a full id or a unique prefix, ``[]`` when nothing matches."""
    lowered = text.strip().lower()
    if is_job_id(lowered):
        return [lowered]
    try:
        prefix = normalize_prefix(text)
    except InvalidOption:
        return []  # cannot start an id: no job has it
    if is_job_id(prefix):
        return [prefix]
    found = store.find_ids(prefix, limit=CANDIDATES_SHOWN + 1)
    if len(found) > 1:
        raise AmbiguousJobId(text, found[:CANDIDATES_SHOWN], more=len(found) > CANDIDATES_SHOWN)
    return found


def select_ids(store: Store, query: JobQuery, *, max_items: int | None = None) -> list[str]:
    """Ids of every job matching ``query`` (its limit/offset are ignored), oldest first.

    Reads pages of :data:`PAGE_SIZE`, stopping after ``max_items`` ids if given. Pages
    are separate reads: a job that changes state meanwhile may be missed or included.
    """
    seen: dict[str, None] = {}
    offset = 0
    while max_items is None or len(seen) < max_items:
        page = store.search(
            dataclasses.replace(query, limit=PAGE_SIZE, offset=offset, newest_first=False)
        )
        for job in page.items:
            seen.setdefault(job.id)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    ids = list(seen)
    return ids if max_items is None else ids[:max_items]


def selected(store: Store, jobs: Selection) -> list[str]:
    """The ids a bulk operation acts on: every match of a query, or the given ids and
    prefixes (see :func:`resolve_ids`)."""
    if isinstance(jobs, JobQuery):
        return select_ids(store, jobs)
    return resolve_ids(store, jobs)


def _batches(ids: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH_SIZE):
        yield unique[start : start + BATCH_SIZE]


def _explain(store: Store, ids: Sequence[str], reason: Callable[[JobState], str]) -> list[Skipped]:
    """Why each of ``ids`` was left alone: unknown, or the reason its state gives."""
    if not ids:
        return []
    found = {job.id: job.state for batch in _batches(ids) for job in store.get_many(batch)}
    return [Skipped(i, reason(found[i]) if i in found else UNKNOWN) for i in ids]


def _left_alone(ids: Sequence[str], changed: Sequence[str]) -> list[str]:
    done = set(changed)
    return [i for i in dict.fromkeys(ids) if i not in done]


# operations --------------------------------------------------------------------------------
def retry(store: Store, ids: Sequence[str]) -> JobsChanged:
    """Move failed/cancelled jobs back to pending with fresh attempts."""
    changed = [i for batch in _batches(ids) for i in store.retry(batch)]
    skipped = _explain(
        store,
        _left_alone(ids, changed),
        lambda state: f"{state.value}: only failed or cancelled jobs can be retried",
    )
    return JobsChanged("retry", changed, skipped)


def cancel(store: Store, ids: Sequence[str], *, force: bool = False) -> JobsChanged:
    """Cancel jobs: waiting ones at once, processing ones cooperatively (or by ``force``)."""
    changed: list[str] = []
    requested: list[str] = []
    for batch in _batches(ids):
        result = store.cancel(batch, force=force)
        changed.extend(result.cancelled)
        requested.extend(result.requested)
    skipped = _explain(
        store,
        _left_alone(ids, [*changed, *requested]),
        lambda state: f"{state.value}: already finished",
    )
    return JobsChanged("cancel", changed, skipped, requested)


def purge(store: Store, ids: Sequence[str]) -> JobsChanged:
    """Delete jobs for good; processing jobs are refused (cancel them first)."""
    changed: list[str] = []
    skipped: list[Skipped] = []
    for batch in _batches(ids):
        found = {job.id: job.state for job in store.get_many(batch)}
        deletable = [i for i in batch if found.get(i, S.PROCESSING) is not S.PROCESSING]
        kept: set[str] = set()
        if deletable:
            store.delete(deletable)
            kept = {job.id for job in store.get_many(deletable)}  # claimed meanwhile
        for job_id in batch:
            if job_id not in found:
                skipped.append(Skipped(job_id, UNKNOWN))
            elif found[job_id] is S.PROCESSING or job_id in kept:
                skipped.append(Skipped(job_id, "processing: cancel it first"))
            else:
                changed.append(job_id)
    return JobsChanged("purge", changed, skipped)


def prioritize(store: Store, ids: Sequence[str], priority: int | str) -> JobsChanged:
    """Set the priority of waiting jobs (pending, scheduled, retrying, blocked).

    Raises:
        InvalidOption: ``priority`` is not an integer in range nor a level name.
    """
    value = check_priority(priority)
    changed = [i for batch in _batches(ids) for i in store.reprioritize(batch, value)]
    reason = _MOVABLE_TEXT.format(verb="re-prioritized")
    skipped = _explain(store, _left_alone(ids, changed), lambda state: f"{state.value}: {reason}")
    return JobsChanged("prioritize", changed, skipped)


def move(store: Store, ids: Sequence[str], queue: str) -> JobsChanged:
    """Move waiting jobs (pending, scheduled, retrying, blocked) to ``queue``.

    Raises:
        InvalidOption: ``queue`` is not a valid queue name.
    """
    target = check_queue(queue)
    changed = [i for batch in _batches(ids) for i in store.move(batch, target)]
    reason = _MOVABLE_TEXT.format(verb="moved")
    skipped = _explain(store, _left_alone(ids, changed), lambda state: f"{state.value}: {reason}")
    return JobsChanged("move", changed, skipped)
