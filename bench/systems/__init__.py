"""One adapter per system: how to enqueue (one call, bulk) and how to start its workers."""

from __future__ import annotations

from bench.systems.base import Context, InProcessSystem, ProcessSystem, System, Unavailable
from bench.systems.celery_sys import CelerySystem
from bench.systems.conveyor_sys import ConveyorMemory, ConveyorStore, conveyor_systems
from bench.systems.dramatiq_sys import DramatiqSystem
from bench.systems.huey_sys import HueySystem
from bench.systems.rq_sys import RQSystem
from bench.systems.taskiq_sys import TaskiqSystem

PEERS: tuple[type[ProcessSystem], ...] = (
    CelerySystem,
    DramatiqSystem,
    RQSystem,
    HueySystem,
    TaskiqSystem,
)

__all__ = [
    "PEERS",
    "CelerySystem",
    "Context",
    "ConveyorMemory",
    "ConveyorStore",
    "DramatiqSystem",
    "HueySystem",
    "InProcessSystem",
    "ProcessSystem",
    "RQSystem",
    "System",
    "TaskiqSystem",
    "Unavailable",
    "conveyor_systems",
]
