"""A run record as each reader sees it: REST summaries/details/items/steps, and runs/get."""

from __future__ import annotations

from typing import Any

from runtime_server.flow.results import to_wire
from runtime_server.runs.clock import rfc3339, rfc3339_offset
from runtime_server.runs.record import PENDING, RunRecord
from wire_protocol.messages import ItemResult, ItemStatistics, RunStatus


def run_summary(record: RunRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "runId": record.run_id,
        "flowId": record.flow_id,
        "flowName": record.flow_name,
        "status": record.status,
        "items": record.item_counts(),
        "createdAt": rfc3339(record.created_ns),
        "completedAt": rfc3339(record.completed_ns) if record.completed_ns else None,
        "rootRunId": record.root_run_id,
    }
    if record.parent_run_id:
        summary["parentRunId"] = record.parent_run_id
    return summary


def run_details(record: RunRecord) -> dict[str, Any]:
    details = run_summary(record)
    details["inputs"] = record.inputs
    if record.overrides:
        details["overrides"] = record.overrides
    details["traceId"] = record.trace_id
    if record.owner is not None:
        details["orchestratorId"] = record.owner
    return details


def item_result(record: RunRecord, index: int) -> dict[str, Any]:
    item: dict[str, Any] = {"itemIndex": index, "status": record.item_status(index)}
    outcome = record.item_outcomes[index]
    if outcome is not PENDING:
        item["result"] = to_wire(outcome)
        item["completedAt"] = rfc3339(record.item_completed_ns[index] or record.created_ns)
    return item


def step_runs(record: RunRecord) -> dict[str, Any]:
    steps = {}
    for step_id, state in record.steps.items():
        entry: dict[str, Any] = {"stepId": step_id, "component": state.component, "status": state.status}
        if state.outcome is not PENDING:
            entry["result"] = to_wire(state.outcome)
        if state.attempt:
            entry["attempt"] = state.attempt
            entry["instanceId"] = state.instance_id
        if state.started_ns:
            entry["startedAt"] = rfc3339(state.started_ns)
        if state.completed_ns:
            entry["completedAt"] = rfc3339(state.completed_ns)
        if state.callbacks:
            entry["callbacks"] = state.callbacks
        steps[step_id] = entry
    return steps


def run_status(record: RunRecord, include_results: bool = False, by_completion: bool = False) -> RunStatus:
    """The RunStatusProtocol answer to runs/submit and runs/get (``+00:00`` timestamps)."""
    results = None
    if include_results:
        indexes: range | list[int] = range(len(record.inputs))
        if by_completion:
            indexes = sorted(indexes, key=lambda index: record.item_completed_ns[index] or float("inf"))
        results = [ItemResult(**_snake(item_result(record, index))) for index in indexes]
    return RunStatus(
        run_id=record.run_id,
        flow_id=record.flow_id,
        status=record.status,
        items=ItemStatistics(**record.item_counts()),
        created_at=rfc3339_offset(record.created_ns),
        flow_name=record.flow_name,
        completed_at=rfc3339_offset(record.completed_ns) if record.completed_ns else None,
        results=results,
    )


def _snake(item: dict[str, Any]) -> dict[str, Any]:
    return {"item_index": item["itemIndex"], "status": item["status"], "result": item.get("result"), "completed_at": item.get("completedAt")}
