"""Conveyor: durable background jobs for Python.

>>> from conveyor import App
>>> app = App("memory://")
>>> @app.task
... def add(a: int, b: int) -> int:
...     return a + b
>>> add.run_sync(1, 2)
3
"""

from conveyor.app import App
from conveyor.clock import Clock, FakeClock, SystemClock
from conveyor.config import AppSettings, WorkerSettings
from conveyor.context import JobContext, current_job
from conveyor.coordination.limits import Concurrency, RateLimit
from conveyor.errors import (
    Cancel,
    ConfigurationError,
    ConveyorError,
    CorruptPayload,
    DependencyCycle,
    IdempotencyConflict,
    IllegalTransition,
    InvalidJob,
    InvalidOption,
    JobNotFound,
    LeaseLost,
    MemoryLimitExceeded,
    PayloadTooComplex,
    PayloadTooLarge,
    Retry,
    SerializationError,
    StoreError,
    StoreUnavailable,
    TaskTimeout,
    UnknownDependency,
    UnknownKey,
    UnknownTask,
    WaitTimeout,
)
from conveyor.handles import JobHandle, JobInfo
from conveyor.job import FailureReason, Job, JobError, JobState
from conveyor.retry import Custom, Exponential, Fixed, Linear
from conveyor.task import Task

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppSettings",
    "Cancel",
    "Clock",
    "Concurrency",
    "ConfigurationError",
    "ConveyorError",
    "CorruptPayload",
    "Custom",
    "DependencyCycle",
    "Exponential",
    "FailureReason",
    "FakeClock",
    "Fixed",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidJob",
    "InvalidOption",
    "Job",
    "JobContext",
    "JobError",
    "JobHandle",
    "JobInfo",
    "JobNotFound",
    "JobState",
    "LeaseLost",
    "Linear",
    "MemoryLimitExceeded",
    "PayloadTooComplex",
    "PayloadTooLarge",
    "RateLimit",
    "Retry",
    "SerializationError",
    "StoreError",
    "StoreUnavailable",
    "SystemClock",
    "Task",
    "TaskTimeout",
    "UnknownDependency",
    "UnknownKey",
    "UnknownTask",
    "WaitTimeout",
    "WorkerSettings",
    "__version__",
    "current_job",
]
