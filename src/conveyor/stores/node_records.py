"""A node registry entry as one JSON document (the store front keeps it on records).

Unknown keys (from a newer version) are ignored and missing optional ones take their
defaults, so mixed versions can share a store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from conveyor.stores.base import NodeInfo, WorkerInfo


def node_params(node: NodeInfo, *, heartbeat_at: float) -> tuple[str, float, float, str]:
    """``(id, started_at, heartbeat_at, data)`` of the node's row, stamped ``heartbeat_at``;
    data is the JSON of the whole NodeInfo."""
    stamped = dataclasses.replace(node, heartbeat_at=heartbeat_at)
    data = orjson.dumps(dataclasses.asdict(stamped)).decode()
    return node.id, node.started_at, heartbeat_at, data


def node_from_json(text: str) -> NodeInfo:
    """A ``nodes.data`` document back to a NodeInfo.

    Keys this version does not know (written by a newer one) are ignored and missing
    optional ones take their defaults, so mixed versions can share a database.
    """
    data: dict[str, Any] = orjson.loads(text)
    fields = _known_fields(NodeInfo, data)
    fields["queues"] = tuple(data["queues"])
    fields["capabilities"] = tuple(data.get("capabilities", ()))
    fields["workers"] = tuple(
        WorkerInfo(**_known_fields(WorkerInfo, worker)) for worker in data.get("workers", ())
    )
    return NodeInfo(**fields)


def _known_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}
