"""PendingRequests: every answer goes to the request that asked, exactly once."""

from __future__ import annotations

import pytest

from wire_protocol.correlation import PendingRequests, UnknownRequestId


def test_ids_are_unique_and_prefixed() -> None:
    table: PendingRequests[str] = PendingRequests(prefix="pod-1/")
    ids = [table.new_id() for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(request_id.startswith("pod-1/") for request_id in ids)


def test_answers_match_by_id_in_any_order() -> None:
    table: PendingRequests[str] = PendingRequests()
    for request_id in ("a", "b", 3):
        table.add(request_id, f"waiter-{request_id}")
    assert table.take("b") == "waiter-b"
    assert table.take(3) == "waiter-3"
    assert table.take("a") == "waiter-a"
    assert len(table) == 0


@pytest.mark.parametrize("late_id", ["never-sent", "taken", "discarded", 3])
def test_unknown_late_or_duplicate_answers_are_refused(late_id: object) -> None:
    table: PendingRequests[str] = PendingRequests()
    table.add("taken", "w1")
    table.add("discarded", "w2")
    table.add("3", "string three")
    table.take("taken")
    table.discard("discarded")
    with pytest.raises(UnknownRequestId):
        table.take(late_id)  # type: ignore[arg-type]  # ids of the wrong type are the point of the test
    assert "3" in table and 3 not in table


def test_an_id_cannot_be_pending_twice() -> None:
    table: PendingRequests[str] = PendingRequests()
    table.add("x", "first")
    with pytest.raises(ValueError, match="already pending"):
        table.add("x", "second")
    assert table.take("x") == "first"


def test_discard_of_an_unknown_id_is_harmless() -> None:
    table: PendingRequests[str] = PendingRequests()
    table.discard("nothing")
    assert len(table) == 0
