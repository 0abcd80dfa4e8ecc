"""The plugin's deadline rules (remote/deadlines.py), on a clock given as numbers."""

from __future__ import annotations

import pytest

from runtime_server.plugins.remote.deadlines import Watch, overdue


def _watch(heard_at: float | None = None, answering: int = 0) -> Watch:
    """Total deadline at t=10, idle limit 2 s; ``answering`` callback answers of ours in flight."""
    watch = Watch(deadline=10.0, idle=2.0)
    if heard_at is not None:
        watch.heard(heard_at)
    watch.answers = {object() for _ in range(answering)}
    return watch


CASES = [
    ("waiting for the answer's head: only the total deadline counts", _watch(), 9.9, None),
    ("the total deadline passed", _watch(), 10.0, "total"),
    ("a stream heard from recently", _watch(heard_at=5.0), 6.9, None),
    ("a stream silent for the idle limit", _watch(heard_at=5.0), 7.0, "idle"),
    ("silent, but an answer of ours is on its way: the pod is waiting for it", _watch(heard_at=5.0, answering=1), 9.0, None),
    ("answering does not stop the total deadline", _watch(heard_at=5.0, answering=1), 10.0, "total"),
    ("idle and past the total deadline: the total deadline is named", _watch(heard_at=0.0), 11.0, "total"),
]


@pytest.mark.parametrize(("name", "watch", "now", "reason"), CASES, ids=[row[0] for row in CASES])
def test_a_watch_is_overdue_for_the_limit_it_passed(name: str, watch: Watch, now: float, reason: str | None) -> None:
    assert watch.overdue(now) == reason


def test_each_new_sound_restarts_the_silence() -> None:
    watch = _watch(heard_at=0.0)
    for now in (1.5, 3.0, 4.5):
        assert watch.overdue(now) is None
        watch.heard(now)
    assert watch.overdue(6.5) == "idle"


def test_overdue_names_each_watch_past_a_limit_once() -> None:
    quiet, fine, late = _watch(heard_at=0.0), _watch(heard_at=4.0), _watch()
    late.deadline = 5.0
    found = overdue([quiet, fine, late], 5.0)
    assert found == [(quiet, "idle"), (late, "total")]
    for watch, reason in found:
        watch.expired = reason
    assert overdue([quiet, fine, late], 6.0) == [(fine, "idle")]
