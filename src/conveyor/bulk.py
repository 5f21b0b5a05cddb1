"""Bulk enqueue: many calls in one atomic store write, handles back in order.

``task.enqueue_many(calls)`` takes one item per job. An item is either

* a tuple (or list) of positional arguments: ``(1, 2)``; a single argument is
  written ``(x,)``; or
* an ``(args, kwargs)`` pair: a plain ``tuple`` of exactly two items whose first
  item is a tuple or list and whose second is a ``dict``: ``((1,), {"b": 2})``.

The pair rule is checked first, so a task that really takes a sequence and a dict
as its two positional arguments must spell the item as a pair,
``(([1], {"a": 1}), {})``, or use ``app.enqueue_many([task.s([1], {"a": 1})])``.

``app.enqueue_many(signatures)`` takes ``task.s(...)`` signatures of any tasks,
each with its own options. Every job is built (checked, encoded) before anything
is written, and all of them are stored by one ``Store.enqueue`` call: a bad item
refuses the whole batch and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidJob, InvalidOption
from conveyor.handles import JobHandle
from conveyor.job import NewJob
from conveyor.workflow import Signature

if TYPE_CHECKING:
    from conveyor.runtime import Producer
    from conveyor.task import Task

CALL_FORMS = (
    "a tuple of positional arguments such as (1, 2) (one argument: (x,)), "
    "or an (args, kwargs) pair such as ((1,), {'b': 2})"
)


def split_call(item: object, index: int) -> tuple[Sequence[Any], dict[str, Any]]:
    """The positional and keyword arguments of one item of ``task.enqueue_many``."""
    if (
        type(item) is tuple
        and len(item) == 2
        and isinstance(item[0], tuple | list)
        and isinstance(item[1], dict)
    ):
        return item[0], item[1]
    if isinstance(item, tuple | list):
        return item, {}
    shown = repr(item)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise InvalidOption(f"calls[{index}]", f"expected {CALL_FORMS}; got {shown}")


def enqueue_calls(task: Task[Any, Any], calls: Iterable[object]) -> list[JobHandle]:
    """Build one job per call of ``task`` (with its bound options) and store them at once."""
    if isinstance(calls, str | bytes | dict) or not isinstance(calls, Iterable):
        raise InvalidOption("calls", f"expected a list of calls, each {CALL_FORMS}")
    app, options = task.app, task.job_options
    build = app.build_job
    jobs: list[NewJob] = []
    for index, item in enumerate(calls):
        args, kwargs = split_call(item, index)
        try:
            jobs.append(build(task, args, kwargs, options))
        except InvalidJob as exc:
            exc.add_note(f"in calls[{index}] of {task.name}.enqueue_many; nothing was stored")
            raise
    return store_batch(app, jobs, options.connection)


def enqueue_signatures(app: Producer, signatures: Iterable[object]) -> list[JobHandle]:
    """Build one job per signature and store them at once (see the module docstring)."""
    if isinstance(signatures, Signature) or not isinstance(signatures, Iterable):
        raise InvalidOption("signatures", "expected a list of signatures: [task.s(...), ...]")
    jobs: list[NewJob] = []
    connection: object | None = None
    for index, sig in enumerate(signatures):
        if not isinstance(sig, Signature):
            raise InvalidOption(
                f"signatures[{index}]", f"expected a signature such as task.s(1, 2); got {sig!r}"
            )
        if sig.task.app is not app:
            raise InvalidOption(
                f"signatures[{index}]", f"task {sig.task.name} is registered on another App"
            )
        given = sig.options.connection
        if given is not None:
            if connection is not None and given is not connection:
                raise InvalidOption(
                    f"signatures[{index}]", "all jobs of a batch must join the same connection"
                )
            connection = given
        try:
            jobs.append(app.build_job(sig.task, sig.args, sig.kwargs, sig.options))
        except InvalidJob as exc:
            exc.add_note(f"in signatures[{index}] of app.enqueue_many; nothing was stored")
            raise
    return store_batch(app, jobs, connection)


def store_batch(app: Producer, jobs: list[NewJob], connection: object | None) -> list[JobHandle]:
    """Store built jobs in one atomic call; handles in the order of ``jobs``."""
    if not jobs:
        return []
    results = app.submit(jobs, connection=connection)
    return [JobHandle(app, result.id, result.duplicate) for result in results]
