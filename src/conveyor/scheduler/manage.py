"""Adding schedules to the store, checked the way ``@app.periodic`` checks its own.

Used by ``app.schedule(...)`` and ``conveyor schedule add``: the expression, zone and
catch-up policy are parsed now; the task's arguments are checked when the task is
registered in the app at hand (the CLI without ``--app`` can only store the name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor import validation
from conveyor.errors import InvalidOption, UnknownTask
from conveyor.scheduler.registry import ScheduleRegistry, StoredSchedule
from conveyor.scheduler.service import parse_timing

if TYPE_CHECKING:
    from conveyor.runtime import Runtime
    from conveyor.task import Task


def store_schedule(
    app: Runtime,
    task: Task[Any, Any] | str,
    expression: str,
    *,
    name: str | None = None,
    tz: str | None = None,
    catch_up: str = "latest",
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    replace_existing: bool = True,
    require_task: bool = True,
) -> StoredSchedule:
    """Validate and store a schedule; return it as stored.

    Raises:
        ScheduleError: the expression or zone is not understood.
        UnknownTask: ``require_task`` and the app has no such task.
        InvalidOption: a bad name, catch-up policy or arguments.
        ScheduleExists: the name is taken and ``replace_existing`` is false.
    """
    task_name = task if isinstance(task, str) else task.name
    validation.task_name(task_name)
    known = app.tasks.get(task_name) if isinstance(task, str) else task
    if known is None and require_task:
        raise UnknownTask(task_name, list(app.tasks))
    _, zone, policy = parse_timing(expression, tz, catch_up)
    if isinstance(args, str) or not isinstance(args, Sequence):
        raise InvalidOption("args", "must be a list of arguments")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InvalidOption("kwargs", "must be a dict of keyword arguments")
    arg_list, kwarg_dict = list(args), dict(kwargs or {})
    app.codec.dumps(arg_list, what="args")
    app.codec.dumps(kwarg_dict, what="kwargs")
    if known is not None:
        known.check_arguments(tuple(arg_list), kwarg_dict, False)
    schedule = StoredSchedule(
        name=name or task_name,
        task=task_name,
        expression=expression.strip(),
        tz=str(zone.key),
        catch_up=policy,
        args=arg_list,
        kwargs=kwarg_dict,
        source="store",
    )
    return ScheduleRegistry(app.store).add(schedule, replace_existing=replace_existing)
