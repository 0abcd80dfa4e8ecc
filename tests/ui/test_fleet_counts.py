"""Executions per pod as the fleet page shows them, counted from journal entries (a pure table test)."""

from __future__ import annotations

import pytest

from runtime_server.api.fleet import UNKNOWN, executions_by_pod


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], {}),
        ([("run_started", None), ("step_started", None), ("item_completed", None)], {}),
        ([("step_succeeded", "pod-a"), ("step_succeeded", "pod-a"), ("step_failed", "pod-b")], {"pod-a": {"succeeded": 2}, "pod-b": {"failed": 1}}),
        ([("step_retried", "pod-a"), ("step_succeeded", "pod-b")], {"pod-a": {"retried": 1}, "pod-b": {"succeeded": 1}}),
        ([("step_succeeded", None), ("step_failed", "")], {UNKNOWN: {"succeeded": 1, "failed": 1}}),
        ([("run_recovered", "runtime-1")], {}),
    ],
)
def test_each_ended_execution_counts_for_the_pod_that_answered(entries: list[tuple[str, str | None]], expected: dict[str, dict[str, int]]) -> None:
    assert {pod: dict(counts) for pod, counts in executions_by_pod(entries).items()} == expected
