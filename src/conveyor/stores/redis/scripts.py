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
    "records",
    "controls",
    "quarantine",
)
LEASED = frozenset(("fail", "release", "finish_cancelled"))
"""Scripts on one held job: ``leased.lua`` (the lease check) runs before their body."""


def source(name: str) -> str:
    """The full text of script ``name``: ``common.lua``, then ``leased.lua`` for the
    scripts in :data:`LEASED`, then ``name.lua``."""
    folder = resources.files("conveyor.stores.redis").joinpath("lua")
    parts = ["common", "leased", name] if name in LEASED else ["common", name]
    return "\n".join(folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


def all_sources() -> dict[str, str]:
    """Every script by name."""
    return {name: source(name) for name in NAMES}
