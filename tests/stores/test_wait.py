"""wait_for_work: times out quietly without work, wakes promptly on an enqueue."""

from __future__ import annotations

import threading
import time

from conveyor.stores.base import Store

from .support import add


def test_wait_for_work_times_out_without_work(store: Store) -> None:
    started = time.monotonic()

    assert store.wait_for_work(["default"], timeout=0.05) is False

    assert time.monotonic() - started < 2.0


def test_wait_for_work_wakes_when_another_thread_enqueues(store: Store) -> None:
    waiting = threading.Event()
    done = threading.Event()
    outcome: list[object] = []

    def waiter() -> None:
        try:
            waiting.set()
            outcome.append(store.wait_for_work(["default"], timeout=5.0))
        except BaseException as exc:  # pragma: no cover - reported below
            outcome.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=waiter, daemon=True)
    started = time.monotonic()
    thread.start()
    assert waiting.wait(timeout=5.0)
    # The waiter may not be blocked yet when the first enqueue lands; enqueue again until it
    # returns (each enqueue notifies), so the test never depends on thread scheduling.
    enqueued = 0
    while not done.is_set() and enqueued < 50:
        add(store)
        enqueued += 1
        done.wait(timeout=0.05)
    thread.join(timeout=10.0)

    assert not thread.is_alive()
    assert outcome == [True]
    assert time.monotonic() - started < 4.5
