"""The Redis prune's dry run: old terminal jobs, less the parents that chain steps need.

The prune script skips a job while a chain step that reads its result (``parent_id``) is
not terminal (``steps:<id>``, written at enqueue). The dry run counts the same jobs
without blocking the server: a ``ZCOUNT`` per state, then, only for the jobs that ever
had a chain step (the ``parents`` set), a few pipelined round trips per thousand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

TERMINAL = frozenset((b"completed", b"failed", b"cancelled"))
PAGE = 1000


def count_prunable(client: Any, key: Callable[..., str], cutoffs: Mapping[str, str]) -> int:
    """How many jobs a full pass would delete: each state's jobs finished at or before
    its cutoff (``''`` keeps the state), except the parents a live chain step needs."""
    total = sum(
        int(client.zcount(key("finished", state), "-inf", at))
        for state, at in cutoffs.items()
        if at
    )
    if total == 0:
        return 0
    limits = {state.encode(): float(at) for state, at in cutoffs.items() if at}
    needed = 0
    for page in _pages(client.sscan_iter(key("parents"), count=PAGE)):
        old = _old_terminal(client, key, page, limits)
        needed += sum(_any_live(client, key, old))
    return total - needed


def _pages(items: Iterable[bytes]) -> Iterator[list[bytes]]:
    it = iter(items)
    while page := list(itertools.islice(it, PAGE)):
        yield page


def _old_terminal(
    client: Any, key: Callable[..., str], ids: list[bytes], limits: Mapping[bytes, float]
) -> list[str]:
    """The ids among ``ids`` that the prune script would reach (terminal and old)."""
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(key("job", job_id.decode()), "state", "finished_at")
    old: list[str] = []
    for job_id, (state, finished) in zip(ids, pipe.execute(), strict=True):
        limit = limits.get(state) if state is not None else None
        if limit is not None and finished is not None and float(finished) <= limit:
            old.append(job_id.decode())
    return old


def _any_live(client: Any, key: Callable[..., str], parents: list[str]) -> list[bool]:
    """Per parent: whether one of its chain steps is not terminal."""
    pipe = client.pipeline(transaction=False)
    for parent in parents:
        pipe.smembers(key("steps", parent))
    steps = [sorted(s) for s in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    for step in itertools.chain.from_iterable(steps):
        pipe.hget(key("job", step.decode()), "state")
    states = iter(pipe.execute())
    per_parent = [list(itertools.islice(states, len(group))) for group in steps]
    return [any(s is not None and s not in TERMINAL for s in group) for group in per_parent]
