"""Run ids are UUID v7 as upstream's: canonical text, version 7, RFC 4122 variant, time-ordered."""

from __future__ import annotations

import time
import uuid

from runtime_server.runs.ids import is_run_id, new_run_id


def test_run_ids_are_canonical_uuid_v7() -> None:
    for _ in range(1000):
        run_id = new_run_id()
        parsed = uuid.UUID(run_id)
        assert str(parsed) == run_id and is_run_id(run_id)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_run_ids_sort_by_creation_time_and_carry_it() -> None:
    first = new_run_id()
    time.sleep(0.002)
    second = new_run_id()
    assert first < second
    millis = uuid.UUID(second).int >> 80
    assert abs(millis - time.time_ns() // 1_000_000) < 1000
