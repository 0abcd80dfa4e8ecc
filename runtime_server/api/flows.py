"""``/flows``: store by content hash (validated), fetch in normalised form, delete for real."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from runtime_server.api.responses import ApiError, json_response, read_body
from runtime_server.flow.model import FlowParseError, load_flow_text
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow_catalog import NotAFlow
from runtime_server.runtime import Runtime


class StoreFlowRequest(msgspec.Struct, rename="camel"):
    flow: Any
    dry_run: bool = False


def prepare_submitted(runtime: Runtime, flow: Any) -> PreparedFlow:
    """A flow given as an object, or as YAML/JSON text; parse errors are 422 with the location."""
    try:
        data = load_flow_text(flow) if isinstance(flow, str) else flow
        return runtime.flows.prepare(data)
    except FlowParseError as error:
        raise ApiError(422, f"The flow could not be parsed: {error.message}", path=error.location) from None


def fetch_flow(runtime: Runtime, flow_id: str) -> PreparedFlow:
    try:
        prepared = runtime.flows.get(flow_id)
    except NotAFlow:
        raise ApiError(400, "Blob is not a flow") from None
    if prepared is None:
        raise ApiError(404, "Flow not found")
    return prepared


def _all_examples(flow_json: dict[str, Any]) -> list[Any]:
    examples = list(flow_json.get("examples") or [])
    named = {example.get("name") for example in examples if isinstance(example, dict)}
    for case in (flow_json.get("test") or {}).get("cases") or []:
        if isinstance(case, dict) and case.get("name") not in named:
            examples.append({key: case[key] for key in ("name", "description", "input") if key in case})
    return examples


async def store_flow(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, StoreFlowRequest)
    prepared = prepare_submitted(runtime, body.flow)
    stored = False if body.dry_run else runtime.flows.store(prepared)
    return json_response({"flowId": prepared.flow_id, "stored": stored, "diagnostics": prepared.diagnostics})


async def get_flow(request: Request) -> Response:
    prepared = fetch_flow(request.app.state.runtime, request.path_params["flow_id"])
    body: dict[str, Any] = {"flow": prepared.flow_json, "flowId": prepared.flow_id}
    examples = _all_examples(prepared.flow_json)
    if examples:
        body["allExamples"] = examples
    return json_response(body)


async def delete_flow(request: Request) -> Response:
    flow_id = request.path_params["flow_id"]
    if not request.app.state.runtime.flows.delete(flow_id):
        raise ApiError(404, "Flow not found")
    return Response(status_code=200)
