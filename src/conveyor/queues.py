"""Which queue a worker asks first: strict order or smooth weighted round-robin.

Pure logic, no I/O. With weights ``high=6,default=3,low=1`` every ten claims ask
``high`` first six times, ``default`` three times and ``low`` once, interleaved
(nginx's smooth weighted round-robin), and each claim falls back to the other
queues in weight order, so no queue starves and no capacity idles.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import ConfigurationError, InvalidOption
from conveyor.validation import queue_name

MAX_WEIGHT = 1000


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Queues and their weights; ``weighted`` is False for strict order."""

    names: tuple[str, ...]
    weights: tuple[int, ...]
    weighted: bool


def parse_queues(spec: str) -> QueueSpec:
    """Parse ``"a,b"`` (strict order) or ``"a=6,b=3"`` (weights; all or none)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigurationError("queues: give at least one queue name, e.g. 'default'")
    names: list[str] = []
    weights: list[int] = []
    with_weight = ["=" in p for p in parts]
    if any(with_weight) and not all(with_weight):
        raise ConfigurationError(
            f"queues: {spec!r} mixes weighted and plain queues; give every queue a weight "
            "(high=6,default=3,low=1) or none (strict order: high,default,low)"
        )
    for part in parts:
        name, _, weight_text = part.partition("=")
        try:
            names.append(queue_name(name.strip(), "queues"))
        except InvalidOption as exc:
            raise ConfigurationError(str(exc)) from exc
        weight = 1
        if weight_text:
            if not weight_text.strip().isdigit() or not 1 <= int(weight_text) <= MAX_WEIGHT:
                raise ConfigurationError(
                    f"queues: weight of {name!r} must be an integer from 1 to {MAX_WEIGHT}, "
                    f"got {weight_text!r}"
                )
            weight = int(weight_text)
        weights.append(weight)
    if len(set(names)) != len(names):
        raise ConfigurationError(f"queues: {spec!r} names a queue twice")
    return QueueSpec(tuple(names), tuple(weights), all(with_weight))


class QueueSelector:
    """Yields, for each claim, the queues in the order to try them."""

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self._current = [0] * len(spec.names)
        self._total = sum(spec.weights)
        by_weight = sorted(range(len(spec.names)), key=lambda i: (-spec.weights[i], i))
        self._fallback = [spec.names[i] for i in by_weight]
        self._strict = list(spec.names)

    def next_order(self) -> list[str]:
        """The queue order for the next claim."""
        if not self.spec.weighted or len(self.spec.names) == 1:
            return self._strict
        best = 0
        for i, weight in enumerate(self.spec.weights):
            self._current[i] += weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        first = self.spec.names[best]
        return [first, *(q for q in self._fallback if q != first)]
