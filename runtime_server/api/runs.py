"""``/runs``: create (stored or inline flow, wait or not), read, list, cancel, delete, events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runtime_server.api import limits
from runtime_server.api.flows import check_components, fetch_flow, prepare_submitted
from runtime_server.api.request_headers import header
from runtime_server.api.responses import ApiError, json_response, query_int, read_body
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow.results import to_wire
from runtime_server.nulls import without_nulls
from runtime_server.runs.ids import is_run_id
from runtime_server.runs.record import PENDING, RunRecord
from runtime_server.runs.store import RunQuery
from runtime_server.runs.views import item_result, run_details, run_summary, step_runs
from runtime_server.runtime import RunConflict, Runtime
from telemetry.trace import parse_traceparent
from wire_protocol import headers
from wire_protocol.sse import encode_event

STATUSES = ("running", "completed", "failed", "cancelled", "paused")
_encoder = msgspec.json.Encoder()


class CreateRunRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    input: Any = msgspec.UNSET
    flow_id: str | None = None
    flow: Any = None
    overrides: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None
    max_concurrency: int | None = None
    wait: bool = True


def _inputs(body: CreateRunRequest) -> list[Any]:
    if body.input is msgspec.UNSET or body.input is None:
        raise ApiError(422, 'input is required: a list with one element per item, e.g. [{"value": 3}]')
    if not isinstance(body.input, list):
        raise ApiError(422, "input must be a list with one element per item; wrap a single input as [input]")
    if not body.input:
        raise ApiError(400, "input is an empty list: give at least one item (a run with no items would never do anything)")
    return body.input


async def create_run(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, CreateRunRequest)
    inputs = _inputs(body)
    if body.max_concurrency is not None and body.max_concurrency < 0:
        raise ApiError(400, "maxConcurrency must be 0 or more")
    if (body.flow_id is None) == (body.flow is None):
        raise ApiError(400, "give exactly one of flowId (a stored flow) and flow (the flow itself, as an object or YAML/JSON text)")
    runtime.check_ready()
    limits.check_run_capacity(runtime.runs_in_flight, runtime.settings.limits)
    if body.flow is not None:
        prepared = prepare_submitted(runtime, body.flow)
        if not prepared.runnable:
            raise ApiError(
                400, "The flow is not valid: " + "; ".join(f"{d.formatted} (at {d.path})" for d in prepared.diagnostics.fatal), diagnostics=prepared.diagnostics
            )
    else:
        try:
            prepared = await fetch_flow(runtime, body.flow_id)  # type: ignore[arg-type]  # the exactly-one check above leaves flow_id set here
        except ApiError:
            raise ApiError.stacked(404, f"Workflow '{body.flow_id}' not found") from None
    overrides = _typed(_unwrapped(body.overrides, prepared))
    _check_runnable(runtime, prepared, overrides)
    if body.flow is not None:
        await runtime.flows.store(prepared)
    caller = parse_traceparent(header(request.scope, b"traceparent"))
    record = runtime.submit(
        prepared, inputs, variables=body.variables, overrides=overrides, max_concurrency=body.max_concurrency, trace_id=caller.trace_id if caller else None
    )
    await runtime.journaled(record)
    if not body.wait:
        return json_response({"runId": record.run_id, "itemCount": len(inputs), "status": record.status}, 202)
    await runtime.wait(record)
    answer: dict[str, Any] = {"runId": record.run_id, "itemCount": len(inputs), "status": record.status}
    if len(inputs) == 1 and record.item_outcomes[0] is not PENDING:
        answer["result"] = to_wire(record.item_outcomes[0])
    return json_response(answer)


def _unwrapped(overrides: dict[str, Any] | None, prepared: PreparedFlow) -> dict[str, Any] | None:
    """stepflow-py 0.9.2 sends overrides as ``{"steps": {step: override}}``, upstream's server takes them flat:
    the wrapper is taken off unless the flow has a step named ``steps``."""
    if overrides and overrides.keys() == {"steps"} and isinstance(overrides["steps"], dict) and "steps" not in prepared.flow.step_index:
        return overrides["steps"]
    return overrides


def _typed(overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each override as upstream keeps and shows it: ``$type`` first, ``merge_patch`` when not given."""
    if not overrides:
        return overrides
    return {step: {"$type": "merge_patch", **without_nulls(override)} if isinstance(override, dict) else override for step, override in overrides.items()}


def _check_runnable(runtime: Runtime, prepared: PreparedFlow, overrides: dict[str, Any] | None) -> None:
    """Refuse (400) what would only make a run that fails before its first step."""
    if overrides:
        prepared, problem = runtime.effective_flow(prepared, overrides)
        if problem is not None:
            raise ApiError(400, f"The run was not created: {problem}")
    check_components(runtime, prepared)


async def _record(request: Request) -> RunRecord:
    run_id = request.path_params["run_id"]
    if not is_run_id(run_id):
        raise ApiError(400, f"Invalid run id {run_id!r}: expected a UUID")
    record = await request.app.state.runtime.get_run(run_id)
    if record is None:
        raise ApiError.stacked(404, f"Execution '{run_id}' not found")
    return record


async def list_runs(request: Request) -> Response:
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    query = RunQuery(
        status=status,
        flow_name=request.query_params.get("flowName"),
        root_run_id=request.query_params.get("rootRunId"),
        parent_run_id=request.query_params.get("parentRunId"),
        limit=query_int(request, "limit", 100, 0, 10_000),
        offset=query_int(request, "offset", 0, 0, 10**9),
    )
    return json_response({"runs": [run_summary(record) for record in await request.app.state.runtime.list_runs(query)]})


MAX_WAIT_SECONDS = 3600


async def get_run(request: Request) -> Response:
    """The run; with ``wait=true``, once it has ended or ``timeoutSecs`` (default 60) have passed
    (upstream 0.10's long poll: a client whose waiting ``POST /runs`` broke waits again here)."""
    record = await _record(request)
    if request.query_params.get("wait", "false").lower() == "true" and not record.finished:
        timeout = query_int(request, "timeoutSecs", 60, 0, MAX_WAIT_SECONDS)
        record = await request.app.state.runtime.wait_for_end(record, timeout)
    return json_response(run_details(record))


async def get_items(request: Request) -> Response:
    record = await _record(request)
    offset = query_int(request, "offset", 0, 0, 10**9)
    limit = query_int(request, "limit", 1000, 1, 100_000)
    indexes = range(offset, min(offset + limit, len(record.inputs)))
    return json_response({"itemCount": len(record.inputs), "items": [item_result(record, index) for index in indexes]})


async def get_steps(request: Request) -> Response:
    return json_response({"steps": step_runs(await _record(request))})


async def get_run_flow(request: Request) -> Response:
    record = await _record(request)
    prepared = await fetch_flow(request.app.state.runtime, record.flow_id)
    return json_response({"flow": prepared.flow_json, "flowId": prepared.flow_id})


async def cancel_run(request: Request) -> Response:
    try:
        return json_response(run_summary(await request.app.state.runtime.cancel_anywhere(await _record(request))))
    except RunConflict as conflict:
        raise ApiError.stacked(409, str(conflict)) from None


async def delete_run(request: Request) -> Response:
    try:
        await request.app.state.runtime.delete(await _record(request))
    except RunConflict as conflict:
        raise ApiError.stacked(409, str(conflict)) from None
    return Response(status_code=200)


async def get_events(request: Request) -> Response:
    """The run's journal: JSON, or an SSE stream that follows a live run to its end."""
    record = await _record(request)
    if headers.SSE in (header(request.scope, b"accept") or ""):
        runtime: Runtime = request.app.state.runtime
        events = _event_stream(record) if runtime.is_live(record.run_id) or record.finished else _peer_event_stream(runtime, record)
        return StreamingResponse(events, media_type=headers.SSE, headers={"Cache-Control": "no-cache"})
    return json_response({"runId": record.run_id, "status": record.status, "events": record.events()})


async def _event_stream(record: RunRecord) -> AsyncIterator[bytes]:
    sent = 0
    while True:
        change = record.next_change()
        events = record.events(sent)
        sent += len(events)  # entries recorded while these are sent go out on the next round
        for event in events:
            yield encode_event(_encoder.encode(event))
        if record.journal_complete and sent == len(record.journal):
            return
        await change.wait()


PEER_EVENTS_SECONDS = 0.5
"""How often the journal of a run another replica runs is read again for an events stream."""


async def _peer_event_stream(runtime: Runtime, record: RunRecord) -> AsyncIterator[bytes]:
    """The events of a run another replica runs: its journal read from the shared store as it grows
    (woken at once by the run's end), until the end is in."""
    sent = 0
    while True:
        events = record.events(sent)
        sent += len(events)
        for event in events:
            yield encode_event(_encoder.encode(event))
        if record.journal_complete:
            return
        record = await runtime.wait_for_end(record, PEER_EVENTS_SECONDS)
        if record.finished and not record.journal_complete:
            record = await runtime.get_run(record.run_id) or record
