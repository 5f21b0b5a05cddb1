"""Job ids: canonical UUIDv7 strings, strictly increasing within a process."""

from __future__ import annotations

import threading
import uuid

from conveyor.ids import IdGenerator, is_job_id


def test_ids_are_canonical_uuid7_and_strictly_increasing() -> None:
    generator = IdGenerator()
    ids = [generator.new() for _ in range(5000)]  # many share a millisecond
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert str(parsed) == job_id and len(job_id) == 36
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert is_job_id(job_id)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ids_from_threads_are_unique() -> None:
    generator = IdGenerator()
    found: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(generator.new() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(out,)) for out in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for out in found for job_id in out]
    assert len(set(every)) == len(every) == 8000
    assert all(out == sorted(out) for out in found)


def test_is_job_id_refuses_other_text() -> None:
    assert not is_job_id("not-a-uuid")
    assert not is_job_id("01a2082f26f57000ab6b7add052e8bb6")  # no hyphens
