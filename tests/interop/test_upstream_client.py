"""Every call of upstream's Python client (stepflow-py 0.9.2) against stepflow-server 0.9.0 and ours.

Both servers run side by side in a network namespace of their own (one config: the
conformance corpus's builtin and mock plugins, plus a scripted pod for a run that never
ends) and get the same client calls in the same order. Each call's outcome is what the
client made of the answer: its parsed model as a dict (ids and timestamps replaced by
their order of appearance, so the two sides compare), or the exception class it raised
and the HTTP status. The flows are built with the SDK's ``FlowBuilder``, which writes
every unset option as ``null`` (issue 14).

Outcomes must be equal field for field, except the deliberate differences listed in
``DIFFERENCES`` (docs/upstream-client.md says why); each of those is checked as what it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel
from stepflow_py import StepflowClient
from stepflow_py.api.api import ComponentApi, FlowApi, HealthApi, RunApi
from stepflow_py.api.exceptions import ApiException
from stepflow_py.api.models import Diagnostics, ExecutionStatus, Flow, OnErrorDefault, OnErrorFail, OnErrorRetry
from stepflow_py.api.models.create_run_request import CreateRunRequest
from stepflow_py.api.models.create_run_response import CreateRunResponse
from stepflow_py.api.models.store_flow_request import StoreFlowRequest
from stepflow_py.worker.flow_builder import FlowBuilder
from stepflow_py.worker.value import Value

from tests.support.netns import netns_available
from tests.support.upstream_server import BINARY, both_servers_with_scripted_pod

pytestmark = pytest.mark.skipif(not netns_available() or not BINARY.exists(), reason="needs root, iproute2 and stepflow-server")

POD, POD_PORT = "127.0.0.1", 8089
UNKNOWN_RUN = "0190c2a6-1c2d-7e3f-8a9b-0c1d2e3f4a5b"
UNKNOWN_FLOW = "0" * 64
NEVER_ENDS_SECONDS = 2.0
DATA = {"message": "hi", "nested": {"list": [1, 2, 3], "flag": True}}


def expressions_flow() -> Flow:
    """Every expression the builder writes: input (root, field, index), step references with paths
    (attribute, index, ``Value.step``), literals (escaped and plain, null), variables (with and
    without default), templates; schemas, metadata, ``mustExecute`` unset (null), ``onError`` unset."""
    builder = FlowBuilder(name="client-expressions", description="every expression FlowBuilder writes", version="1.0", metadata={"owner": "tests"})
    builder.set_input_schema({"type": "object", "properties": {"data": {"type": "object"}}})
    builder.set_output_schema({"type": "object"})
    builder.set_variables_schema({"type": "object", "properties": {"greeting": {"type": "string", "default": "hello"}}})
    data = {
        "whole": Value.input(),
        "field": Value.input("$.data.message"),
        "attribute": Value.input.add_path("data", "nested"),
        "index": Value.input("$.data.nested.list[1]"),
        "escaped": Value.literal({"$step": "not a reference", "$input": "$"}),
        "plain": {"n": 3, "f": 1.5, "b": False, "s": "text", "none": None},
        "list": [Value.input("$.data.message"), 7],
        "variable": Value.variable("greeting"),
        "variable_default": Value.variable("missing", "fallback"),
        "variable_path": Value.variable("settings.depth", 0),
    }
    put = builder.add_step(id="put", component="/builtin/put_blob", input_data={"data": data, "blob_type": "data"}, metadata={"step": "put"})
    get = builder.add_step(id="get", component="/builtin/get_blob", input_data={"blob_id": put.blob_id})
    builder.set_output({"data": get.data, "blob_id": Value.step("put", "$.blob_id"), "first": get["data"]["list"][0]})
    return builder.build()


def options_flow() -> Flow:
    """Every step option: each ``onError`` variant, ``mustExecute`` true and false, metadata."""
    builder = FlowBuilder(name="client-options", description="onError, mustExecute, metadata")
    failing = {"mode": "error"}
    fail = builder.add_step(id="fail", component="/mock/error", input_data=failing, on_error=OnErrorFail(action="fail"), must_execute=False)
    default_on_error = OnErrorDefault(action="useDefault", default_value={"output": "d"})  # type: ignore[call-arg]  # pydantic takes the field name too
    default = builder.add_step(id="default", component="/mock/error", input_data=failing, on_error=default_on_error)
    bare = builder.add_step(id="bare_default", component="/mock/error", input_data=failing, on_error=OnErrorDefault(action="useDefault"))
    builder.add_step(
        id="retry", component="/mock/error", input_data={"mode": "succeed"}, on_error=OnErrorRetry(action="retry"), must_execute=True, metadata={"a": 1}
    )
    builder.add_step(id="unused", component="/mock/error", input_data={"mode": "succeed"}, must_execute=False)
    builder.add_output_field("default", default.output)
    builder.add_output_field("bare", Value.step(bare.id))
    builder.add_output_field("failed_step_not_needed", Value.literal(fail.id))
    return builder.build()


def unrouted_flow() -> Flow:
    builder = FlowBuilder(name="client-unrouted", description="no builtin has its component")
    step = builder.add_step(id="nowhere", component="/nowhere/at_all", input_data={})
    return builder.set_output(Value.step(step.id)).build()


def failing_flow() -> Flow:
    builder = FlowBuilder(name="client-failing", description="its one step fails")
    step = builder.add_step(id="fail", component="/mock/error", input_data={"mode": "error"})
    return builder.set_output(Value.step(step.id)).build()


def self_reference_flow() -> Flow:
    builder = FlowBuilder(name="client-invalid", description="a step that needs itself")
    builder.add_step(id="loop", component="/builtin/put_blob", input_data={"data": Value.step("loop"), "blob_type": "data"})
    return builder.set_output(Value.step("loop")).build()


def endless_flow() -> Flow:
    builder = FlowBuilder(name="client-endless", description="its one step never answers")
    step = builder.add_step(id="wait", component="/python/silent", input_data={})
    return builder.set_output(Value.step(step.id)).build()


@dataclass
class Outcome:
    """What the client made of one answer: its model as plain data, or the exception it raised."""

    value: Any = None
    raised: str | None = None
    status: int | None = None


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass
class Session:
    """One side's client, its generated APIs, and the ids learnt so far."""

    client: StepflowClient
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def flows(self) -> FlowApi:
        return FlowApi(self.client._api_client)

    @property
    def runs(self) -> RunApi:
        return RunApi(self.client._api_client)

    async def store(self, name: str, flow: Flow) -> Any:
        stored = await self.client.store_flow(flow)
        self.ids[name] = stored.flow_id
        return stored

    async def run(self, name: str, flow: str, *inputs: Any, **options: Any) -> CreateRunResponse:
        created = await self.client.run(self.ids[flow], list(inputs), **options)
        self.ids[name] = created.run_id
        return created

    async def raw(self, method: str, path: str, body: Any = None, response_types: dict[str, str] | None = None) -> Any:
        """What the 0.9.2 models cannot express or parse, through the client's own transport: the
        answer parsed as ``response_types`` says (an error status raises as usual), else as JSON."""
        api = self.client._api_client
        response = await api.call_api(*api.param_serialize(method, path, header_params=JSON_HEADERS, body=body))
        await response.read()
        answer = api.response_deserialize(response, response_types or {"2XX": "object"}).data
        return {"status code": response.status, "answer": answer}

    async def raw_run(self, name: str, body: dict[str, Any]) -> Any:
        answer = await self.raw("POST", "/runs", body, {"200": "CreateRunResponse", "202": "CreateRunResponse"})
        self.ids[name] = answer["answer"].run_id
        return answer

    def expressions_run(self) -> dict[str, Any]:
        return {"flowId": self.ids["expressions"], "input": [{"data": DATA}], "variables": {"greeting": "yo"}}

    def flow_json(self, flow: Flow) -> Any:
        return self.client._api_client.sanitize_for_serialization(flow)

    async def finished_run(self, name: str) -> Any:
        """The run once it has ended (polled, bounded)."""
        for _ in range(100):
            run = await self.runs.get_run(self.ids[name])
            if run.status != ExecutionStatus.RUNNING:
                return run
            await asyncio.sleep(0.05)
        raise AssertionError(f"run {name} did not end within 5 s")

    async def start_endless_run(self) -> Any:
        """A run that never ends: the client's call is abandoned after a bound, the run is found by listing."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.client.run(self.ids["endless"], [{}]), NEVER_ENDS_SECONDS)
        running = await self.runs.list_runs(status=ExecutionStatus.RUNNING)
        self.ids["running"] = running.runs[0].run_id
        return running


Call = Callable[[Session], Awaitable[Any]]
OVERRIDE = {"put": {"value": {"input": {"data": {"list": ["overridden"]}}}}}


def calls() -> list[tuple[str, Call]]:
    """(name, call) of the whole conversation, in order; later calls use ids learnt by earlier ones."""
    return [
        ("is_healthy", lambda s: s.client.is_healthy()),
        ("base_url", lambda s: _value(s.client.base_url.rsplit(":", 1)[0])),
        ("health_check", lambda s: HealthApi(s.client._api_client).health_check()),
        ("list_components", lambda s: ComponentApi(s.client._api_client).list_components()),
        ("list_components without schemas", lambda s: ComponentApi(s.client._api_client).list_components(include_schemas=False)),
        ("store_flow expressions", lambda s: s.store("expressions", expressions_flow())),
        ("store_flow options", lambda s: s.store("options", options_flow())),
        ("store_flow failing", lambda s: s.store("failing", failing_flow())),
        ("store_flow endless", lambda s: s.store("endless", endless_flow())),
        ("store_flow dry run", lambda s: s.client.store_flow(expressions_flow(), dry_run=True)),
        ("store_flow invalid", lambda s: s.store("invalid", self_reference_flow())),
        ("FlowApi.store_flow", lambda s: s.flows.store_flow(StoreFlowRequest(flow=options_flow(), dry_run=False))),  # type: ignore[call-arg]  # pydantic takes the field name too
        ("get_flow", lambda s: s.flows.get_flow(s.ids["expressions"])),
        ("get_flow as JSON", lambda s: s.raw("GET", f"/flows/{s.ids['expressions']}")),
        ("run expressions", lambda s: s.run("run", "expressions", {"data": DATA}, variables={"greeting": "yo", "settings": {"depth": 2}})),
        ("run options", lambda s: s.run("options run", "options", {})),
        ("run failing", lambda s: s.run("failed run", "failing", {})),
        ("run batch", lambda s: s.run("batch", "expressions", {"data": DATA}, {"data": {"message": "two"}}, variables={"greeting": "yo"}, max_concurrency=1)),
        ("RunApi.create_run", lambda s: s.runs.create_run(CreateRunRequest(flowId=s.ids["failing"], input=[{}], variables={}))),
        ("run with flat overrides", lambda s: s.raw_run("overridden", {**s.expressions_run(), "overrides": OVERRIDE})),
        ("submit without waiting", lambda s: s.raw_run("unwaited", {**s.expressions_run(), "wait": False})),
        ("get_run of the unwaited run", lambda s: s.finished_run("unwaited")),
        ("get_run", lambda s: s.runs.get_run(s.ids["run"])),
        ("get_run with overrides", lambda s: s.runs.get_run(s.ids["overridden"])),
        ("get_run with overrides as JSON", lambda s: s.raw("GET", f"/runs/{s.ids['overridden']}")),
        ("get_run_items", lambda s: s.runs.get_run_items(s.ids["batch"])),
        ("client get_run_items", lambda s: s.client.get_run_items(s.ids["batch"])),
        ("get_run_steps", lambda s: s.runs.get_run_steps(s.ids["options run"])),
        ("get_run_steps of a failed run", lambda s: s.runs.get_run_steps(s.ids["failed run"])),
        ("get_run_flow", lambda s: s.runs.get_run_flow(s.ids["run"])),
        ("get_run_flow as JSON", lambda s: s.raw("GET", f"/runs/{s.ids['run']}/flow")),
        ("list_runs", lambda s: s.runs.list_runs()),
        ("list_runs by status", lambda s: s.runs.list_runs(status=ExecutionStatus.FAILED)),
        ("list_runs by flow name", lambda s: s.runs.list_runs(flow_name="client-expressions")),
        ("list_runs by root run", lambda s: s.runs.list_runs(root_run_id=s.ids["run"])),
        ("list_runs by parent run", lambda s: s.runs.list_runs(parent_run_id=s.ids["run"])),
        ("list_runs with max depth", lambda s: s.runs.list_runs(root_run_id=s.ids["run"], max_depth=0)),
        ("list_runs page 1", lambda s: s.runs.list_runs(limit=2, offset=0)),
        ("list_runs page 2", lambda s: s.runs.list_runs(limit=2, offset=2)),
        ("list_runs limit 0", lambda s: s.runs.list_runs(limit=0)),
        ("list_runs past the end", lambda s: s.runs.list_runs(limit=2, offset=100)),
        ("cancel_run of a finished run", lambda s: s.runs.cancel_run(s.ids["run"])),
        ("start a run that never ends", lambda s: s.start_endless_run()),
        ("get_run of a running run", lambda s: s.runs.get_run(s.ids["running"])),
        ("delete_run of a running run", lambda s: s.runs.delete_run(s.ids["running"])),
        ("cancel_run", lambda s: s.runs.cancel_run(s.ids["running"])),
        ("cancel_run of a cancelled run", lambda s: s.runs.cancel_run(s.ids["running"])),
        ("delete_run", lambda s: s.runs.delete_run(s.ids["failed run"])),
        ("delete_flow", lambda s: s.flows.delete_flow(s.ids["failing"])),
        ("run of an unstored invalid flow", lambda s: s.run("never", "invalid", {})),
        ("run of an inline invalid flow", lambda s: s.raw("POST", "/runs", {"flow": s.flow_json(self_reference_flow()), "input": [{}]})),
        ("get_flow unknown", lambda s: s.flows.get_flow(UNKNOWN_FLOW)),
        ("run unknown flow", lambda s: s.client.run(UNKNOWN_FLOW, {})),
        ("get_run unknown", lambda s: s.runs.get_run(UNKNOWN_RUN)),
        ("get_run_items unknown", lambda s: s.runs.get_run_items(UNKNOWN_RUN)),
        ("get_run_steps unknown", lambda s: s.runs.get_run_steps(UNKNOWN_RUN)),
        ("get_run_flow unknown", lambda s: s.runs.get_run_flow(UNKNOWN_RUN)),
        ("cancel_run unknown", lambda s: s.runs.cancel_run(UNKNOWN_RUN)),
        ("delete_run unknown", lambda s: s.runs.delete_run(UNKNOWN_RUN)),
        ("store_flow that does not parse", lambda s: s.raw("POST", "/flows", {"flow": {"steps": {"a": {}}}})),
        ("store_flow unrouted", lambda s: s.store("unrouted", unrouted_flow())),
        ("run of an unrouted component", lambda s: s.run("unrouted run", "unrouted", {})),
        # last: the answers differ in how many ids they hold, and ids are numbered by appearance
        ("run with overrides", lambda s: s.run("client overrides", "expressions", {"data": DATA}, variables={"greeting": "yo"}, overrides={"steps": OVERRIDE})),
        ("health_check with the error hook", lambda s: HealthApi(s.client._api_client).health_check(error="bad_request")),
    ]


async def _value(value: Any) -> Any:
    return value


class Normaliser:
    """Run ids and timestamps by order of appearance: the same conversation gives the same data on both sides."""

    UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

    def __init__(self) -> None:
        self.runs: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        if isinstance(value, datetime.datetime) or (isinstance(value, str) and self.TIME.match(value)):
            return "<time>"
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, str):
            return self.UUID.sub(lambda found: self.runs.setdefault(found[0], f"<run {len(self.runs) + 1}>"), value)
        if hasattr(value, "actual_instance"):  # the client's oneOf wrappers
            return self(value.actual_instance)
        if isinstance(value, BaseModel):
            fields = type(value).model_fields.items()
            return {info.alias or name: self(getattr(value, name)) for name, info in fields if name != "additional_properties"}
        return value


async def converse(api: str) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    normalise = Normaliser()
    async with StepflowClient.connect(api.removesuffix("/api/v1")) as client:
        session = Session(client)
        for name, call in calls():
            try:
                outcomes[name] = Outcome(normalise(await call(session)))
            except ApiException as error:
                outcomes[name] = Outcome(normalise(_json_or_text(error.body)), type(error).__name__, error.status)
            except (ValueError, KeyError) as error:  # the client's own parsing, or an id an earlier call did not give
                outcomes[name] = Outcome(str(error).splitlines()[0], type(error).__name__)
    return outcomes


def _json_or_text(body: str | None) -> Any:
    try:
        return json.loads(body or "")
    except ValueError:
        return body


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Outcome]]]:
    with both_servers_with_scripted_pod(tmp_path_factory.mktemp("upstream-client"), POD, POD_PORT, "upclient") as servers:
        yield {side: asyncio.run(converse(api)) for side, api in servers.both().items()}


def _diagnostics_subset(upstream: Outcome, ours: Outcome) -> None:
    """Same id and stored flag; our diagnostics are some of upstream's, each the same (docs/runtime-fleet.md)."""
    assert {**ours.value, "diagnostics": None} == {**upstream.value, "diagnostics": None}
    by_place = [{f"{d['kind']} at {d['path']}": d for d in outcome.value["diagnostics"]["diagnostics"]} for outcome in (upstream, ours)]
    assert by_place[1].items() <= by_place[0].items()


def _components(upstream: Outcome, ours: Outcome) -> None:
    """The same components (less upstream's /openai and /load_file); descriptions and schemas are each server's own."""
    names = [[entry["component"] for entry in outcome.value["components"]] for outcome in (upstream, ours)]
    assert names[1] == [name for name in names[0] if name not in ("/openai", "/load_file")]


def _waits_upstream_only(upstream: Outcome, ours: Outcome) -> None:
    """Upstream 0.9.0 has no ``wait`` flag and waits; ours answers 202 at once with the run still running."""
    assert (upstream.value["status code"], upstream.value["answer"]["status"]) == (200, "completed")
    assert ours.value["status code"] == 202 and ours.value["answer"] == {**upstream.value["answer"], "result": None, "status": "running"}


def _cancel_stops(upstream: Outcome, ours: Outcome) -> None:
    """Both mark the run cancelled; ours really stops it, so its item counts as cancelled, not running."""
    assert {**ours.value, "items": None} == {**upstream.value, "items": None}
    assert upstream.value["items"] | {"running": 0, "cancelled": 1} == ours.value["items"]


def _both_refuse_unparsable(upstream: Outcome, ours: Outcome) -> None:
    """Both 422, the same exception; upstream's body is plain text, ours JSON naming the place."""
    assert (ours.raised, ours.status) == (upstream.raised, upstream.status) == ("ApiException", 422)
    assert ours.value["path"] == "$.steps"


def _inline_flows_are_ours(upstream: Outcome, ours: Outcome) -> None:
    """Upstream has no inline flows (it wants flowId: 422); ours refuses the invalid one with 400 and
    diagnostics the client's own model reads."""
    assert (upstream.raised, upstream.status) == ("ApiException", 422)
    assert (ours.raised, ours.status) == ("BadRequestException", 400)
    diagnostics = Diagnostics.from_dict(ours.value["diagnostics"])
    assert diagnostics is not None
    assert [(d.kind, d.level.value, d.path) for d in diagnostics.diagnostics] == [("selfReference", "fatal", "$.steps[0].input.data")]


def _unrouted_refused_before_run(upstream: Outcome, ours: Outcome) -> None:
    """Upstream makes a run that fails at once; ours refuses it (400, nothing created: docs/limits.md)."""
    assert upstream.raised is None and upstream.value["status"] == "failed"
    assert (ours.raised, ours.status, ours.value["path"]) == ("BadRequestException", 400, "$.steps[0].component")


def _client_overrides_are_unwrapped(upstream: Outcome, ours: Outcome) -> None:
    """The 0.9.2 client wraps overrides in ``{"steps": ...}``: upstream 0.9.0 refuses that (422), ours takes the wrapper off."""
    assert (upstream.raised, upstream.status) == ("ApiException", 422)
    assert ours.raised is None and ours.value["result"]["result"]["first"] == "overridden"


def _our_trace_id(upstream: Outcome, ours: Outcome) -> None:
    """Ours adds the run's ``traceId`` and ``orchestratorId`` (the runtime that runs it; the 0.9.2 model drops both)."""
    assert isinstance(ours.value["answer"].pop("traceId"), str)
    assert isinstance(ours.value["answer"].pop("orchestratorId"), str)
    assert ours.value == upstream.value


def _no_error_hook(upstream: Outcome, ours: Outcome) -> None:
    """Upstream's test hook answers a synthetic error (404 for ``bad_request``); ours has none and answers healthy."""
    assert (upstream.raised, upstream.status) == ("NotFoundException", 404)
    assert ours.raised is None and ours.value["status"] == "healthy"


DIFFERENCES: dict[str, Callable[[Outcome, Outcome], None]] = {
    "health_check with the error hook": _no_error_hook,
    "get_run with overrides as JSON": _our_trace_id,
    "list_components": _components,
    "list_components without schemas": _components,
    "store_flow expressions": _diagnostics_subset,
    "store_flow options": _diagnostics_subset,
    "store_flow dry run": _diagnostics_subset,
    "FlowApi.store_flow": _diagnostics_subset,
    "submit without waiting": _waits_upstream_only,
    "cancel_run": _cancel_stops,
    "store_flow that does not parse": _both_refuse_unparsable,
    "run of an inline invalid flow": _inline_flows_are_ours,
    "run of an unrouted component": _unrouted_refused_before_run,
    "run with overrides": _client_overrides_are_unwrapped,
}
"""Each deliberate difference (docs/upstream-client.md) and what it is."""
CLIENT_CANNOT_PARSE = {"get_flow", "get_run_flow", "get_run with overrides"}
"""The 0.9.2 client's own models fail on upstream's answers too: a flow's ``$step``/``$input`` match two
of its ValueExpr variants; it wants overrides wrapped in ``steps``. The same data as JSON is compared instead."""
ERROR_PATHS = {
    "get_flow unknown": "NotFoundException",
    "run unknown flow": "NotFoundException",
    "run of an unstored invalid flow": "NotFoundException",
    "get_run unknown": "NotFoundException",
    "get_run_items unknown": "NotFoundException",
    "get_run_steps unknown": "NotFoundException",
    "get_run_flow unknown": "NotFoundException",
    "cancel_run unknown": "NotFoundException",
    "delete_run unknown": "NotFoundException",
    "cancel_run of a finished run": "ApiException",
    "cancel_run of a cancelled run": "ApiException",
    "delete_run of a running run": "ApiException",
}
NAMES = [name for name, _ in calls()]


@pytest.mark.parametrize("name", [name for name in NAMES if name not in DIFFERENCES])
def test_the_client_gets_the_same_from_both(outcomes: dict[str, dict[str, Outcome]], name: str) -> None:
    assert outcomes["ours"][name] == outcomes["upstream"][name]


@pytest.mark.parametrize("name", list(DIFFERENCES))
def test_each_deliberate_difference_is_what_it_says(outcomes: dict[str, dict[str, Outcome]], name: str) -> None:
    DIFFERENCES[name](outcomes["upstream"][name], outcomes["ours"][name])


def test_the_client_parses_every_answer_of_ours(outcomes: dict[str, dict[str, Outcome]]) -> None:
    unparsed = {name: outcome for name, outcome in outcomes["ours"].items() if outcome.raised and not outcome.status}
    assert unparsed.keys() == CLIENT_CANNOT_PARSE
    assert {name: outcomes["upstream"][name].raised for name in unparsed} == {name: outcome.raised for name, outcome in unparsed.items()}


@pytest.mark.parametrize("name", list(ERROR_PATHS))
def test_error_paths_raise_the_same_exception(outcomes: dict[str, dict[str, Outcome]], name: str) -> None:
    assert outcomes["ours"][name].raised == outcomes["upstream"][name].raised == ERROR_PATHS[name]
    assert outcomes["ours"][name].value == outcomes["upstream"][name].value


EXPECTED_DATA = {
    "whole": {"data": DATA},
    "field": "hi",
    "attribute": DATA["nested"],
    "index": 2,
    "escaped": {"$step": "not a reference", "$input": "$"},
    "plain": {"n": 3.0, "f": 1.5, "b": False, "s": "text", "none": None},
    "list": ["hi", 7.0],
    "variable": "yo",
    "variable_default": "fallback",
    "variable_path": 2,
}


def test_builder_expressions_give_the_right_values(outcomes: dict[str, dict[str, Outcome]]) -> None:
    result = outcomes["ours"]["run expressions"].value["result"]
    assert result["outcome"] == "success" and result["result"]["data"] == EXPECTED_DATA
    assert result["result"]["first"] == "hi" and len(result["result"]["blob_id"]) == 64
    options = outcomes["ours"]["run options"].value["result"]["result"]
    assert options == {"default": "d", "bare": None, "failed_step_not_needed": "fail"}
    steps = outcomes["ours"]["get_run_steps"].value["steps"]
    assert {step: entry["status"] for step, entry in steps.items()} == {
        "fail": "blocked",
        "default": "completed",
        "bare_default": "completed",
        "retry": "completed",
        "unused": "blocked",
    }
