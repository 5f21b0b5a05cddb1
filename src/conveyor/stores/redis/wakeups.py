"""How a waiting Redis worker hears of new work: the ``{prefix}:wake`` pub/sub channel.

Scripts that make a job pending publish on it (at most once per run); every waiter
hears every notification, whatever its queues.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from conveyor.stores.redis.connection import RedisConnection, guard


class RedisWakeups(RedisConnection):
    """The wake-ups hook over a short-lived subscription."""

    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Wait on the ``{prefix}:wake`` channel until a message or ``timeout``."""
        client = self._redis()
        deadline = time.monotonic() + timeout
        with guard():
            # redis-py annotates pubsub() in some releases and not in others; going through
            # Any keeps the call type-checked the same way whatever release is installed.
            open_pubsub: Any = client.pubsub
            pubsub = open_pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._key("wake"))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    if pubsub.get_message(timeout=left) is not None:
                        return True
            finally:
                pubsub.close()
