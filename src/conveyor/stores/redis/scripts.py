"""The Lua scripts, loaded from package data with the shared helpers prepended."""

from __future__ import annotations

from importlib import resources

NAMES = (
    "enqueue",
    "ack_claim",
    "heartbeat",
    "fail",
    "release",
    "finish_cancelled",
    "stage",
    "rescue",
    "manage",
    "prune",
    "prune_nodes",
    "records",
    "controls",
    "quarantine",
)


def source(name: str) -> str:
    """The full text of script ``name``: ``common.lua`` followed by ``name.lua``."""
    folder = resources.files("conveyor.stores.redis").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{common}\n{body}"


def all_sources() -> dict[str, str]:
    """Every script by name."""
    return {name: source(name) for name in NAMES}
