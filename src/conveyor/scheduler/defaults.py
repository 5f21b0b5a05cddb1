"""The scheduler service's defaults, in a module light enough for the CLI to import
without loading the recurrence maths."""

from __future__ import annotations

DEFAULT_LOOKBACK = 3600.0
"""Seconds back from now in which missed fire times are still considered."""
DEFAULT_MAX_CATCH_UP = 100
"""Most fire times one entry enqueues in one pass (policy ``all``)."""
SKIP_GRACE = 60.0
"""Policy ``skip``: fire times older than this many seconds are not enqueued."""
UNIQUE_MARGIN = 86400.0
"""Unique keys are held for ``lookback`` plus this long."""
DEFAULT_LEADER_TTL = 15.0
"""Seconds a dead leader keeps the lease before a standby takes over."""
LEADER_LEASE = "scheduler"
"""Name of the leader lease record."""
MAX_IDLE = 1.0
"""The service loop never sleeps longer than this many seconds."""
