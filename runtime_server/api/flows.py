"""``/flows``: store by content hash (validated), fetch in normalised form, delete for real."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from runtime_server.api import limits
from runtime_server.api.responses import ApiError, json_response, query_int, read_body
from runtime_server.flow.model import FlowParseError, FlowTooDeep, load_flow_text
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow_catalog import NotAFlow
from runtime_server.plugins.builtin import BuiltinPlugin
from runtime_server.routing import RoutingError
from runtime_server.runs.store import RunQuery
from runtime_server.runtime import Runtime

RUNS_FOR_FLOWS = 1000
"""The flows page also lists the flows of this many of the newest runs."""


class StoreFlowRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    flow: Any
    dry_run: bool = False


def prepare_submitted(runtime: Runtime, flow: Any) -> PreparedFlow:
    """A flow given as an object, or as YAML/JSON text; parse errors are 422 with the location,
    flows past the limits 400/413 naming the limit."""
    api_limits = runtime.settings.limits
    try:
        data = _load_text(flow, runtime) if isinstance(flow, str) else flow
        limits.check_flow_steps(data, api_limits)
        return runtime.flows.prepare(data)
    except FlowParseError as error:
        raise ApiError(422, f"The flow could not be parsed: {error.message}", path=error.location) from None


def _load_text(text: str, runtime: Runtime) -> Any:
    """YAML is checked before anything walks it: aliases can make a small text expand without bound."""
    limits.check_flow_text(text, runtime.settings.limits)
    try:
        data = load_flow_text(text)
    except FlowTooDeep:
        raise limits.too_deep("The flow", runtime.settings.limits) from None
    limits.check_flow_data(data, runtime.settings.limits)
    return data


def check_components(runtime: Runtime, prepared: PreparedFlow) -> None:
    """400 for a step whose component no route serves, or that names a builtin that does not exist."""
    for index, step in enumerate(prepared.flow.steps):
        try:
            route = runtime.router.route_by_name(step.component)
        except RoutingError as error:
            raise ApiError(
                400, f"Step '{step.id}' uses component '{step.component}', which nothing serves: {error}", path=f"$.steps[{index}].component"
            ) from None
        plugin = runtime.plugins.get(route.plugin) if route is not None else None
        if isinstance(plugin, BuiltinPlugin) and route is not None and not plugin.serves(route.component):
            raise ApiError(
                400,
                f"Step '{step.id}' uses component '{step.component}', which is routed to the builtin plugin '{route.plugin}' but is not one of its components (see GET /api/v1/components)",
                path=f"$.steps[{index}].component",
            )


async def fetch_flow(runtime: Runtime, flow_id: str) -> PreparedFlow:
    try:
        prepared = await runtime.flows.get(flow_id)
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
    if body.flow is None:
        raise ApiError(422, "flow is required: the flow itself, as an object or YAML/JSON text")
    prepared = prepare_submitted(runtime, body.flow)
    stored = False if body.dry_run else await runtime.flows.store(prepared)
    return json_response({"flowId": prepared.flow_id, "stored": stored, "diagnostics": prepared.diagnostics})


async def list_flows(request: Request) -> Response:
    """Flows by name (an extension: upstream lists none), paged like the runs: those stored or read
    since the runtime started, and those of its newest runs (a durable store keeps them across restarts)."""
    runtime: Runtime = request.app.state.runtime
    offset = query_int(request, "offset", 0, 0, 10**9)
    limit = query_int(request, "limit", 100, 1, 1000)
    recent = await runtime.list_runs(RunQuery(limit=RUNS_FOR_FLOWS))
    flows = []
    for flow_id in sorted({*runtime.flows.known_ids(), *(record.flow_id for record in recent)}):
        try:
            prepared = await runtime.flows.get(flow_id)
        except NotAFlow:
            continue
        if prepared is not None:
            flows.append(
                {"flowId": flow_id, "name": prepared.flow.name, "description": prepared.flow_json.get("description"), "steps": len(prepared.flow.steps)}
            )
    flows.sort(key=lambda flow: (flow["name"] or "", flow["flowId"]))
    return json_response({"flows": flows[offset : offset + limit], "total": len(flows)})


async def get_flow(request: Request) -> Response:
    prepared = await fetch_flow(request.app.state.runtime, request.path_params["flow_id"])
    body: dict[str, Any] = {"flow": prepared.flow_json, "flowId": prepared.flow_id}
    examples = _all_examples(prepared.flow_json)
    if examples:
        body["allExamples"] = examples
    return json_response(body)


async def delete_flow(request: Request) -> Response:
    flow_id = request.path_params["flow_id"]
    if not await request.app.state.runtime.flows.delete(flow_id):
        raise ApiError(404, "Flow not found")
    return Response(status_code=200)
