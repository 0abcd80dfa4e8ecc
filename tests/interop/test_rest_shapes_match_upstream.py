"""Every endpoint of rest-api.md answers like stepflow-server 0.9.0: status codes, field names and types.

Both servers run side by side (one config, a network namespace of their own) and get the
same requests in the same order, on the same stored flow and runs. Values are compared
by type only, so ids and timestamps do not matter. Where ours answers differently on
purpose, the difference is named below and checked as what it is:

* every error body is JSON ``{"code", "message"}`` with ``application/json`` (upstream sends
  framework rejections as plain text and its JSON errors as ``text/plain``: rest-api.md §1.1);
* ``GET /health`` adds each plugin's health; ``GET /runs/{id}`` adds the run's ``traceId``;
* the builtins ``/openai`` and ``/load_file`` are left out (runtime_server/plugins/builtin.py);
* ``DELETE`` really deletes (rest-api.md §5.3, §6.8): checked in tests/runtime_server/test_api.py;
* cancel really stops a run (§6.7): same answer shape, but ours counts the item as cancelled.

A run that never ends (its step is a scripted pod's ``/silent``) covers the endpoints on a
running run: neither server answers its ``POST /runs`` within 2 s.

Components' JSON Schemas are their own content, not the API's shape: compared as objects.
Flow diagnostics are compared entry by entry, values and all (code, level, message, data),
where both servers report the same kind at the same place; our validation does not report
every kind upstream's does (see docs/runtime-fleet.md), and never one upstream does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.support.netns import netns_available
from tests.support.upstream_server import BINARY, CORPUS, both_servers_with_scripted_pod

pytestmark = pytest.mark.skipif(not netns_available() or not BINARY.exists(), reason="needs root, iproute2 and stepflow-server")

FLOW = yaml.safe_load((CORPUS / "builtins" / "blob_test.yaml").read_text())
BROKEN_REFERENCES = {
    "name": "broken",
    "description": "references nothing",
    "steps": [{"id": "a", "component": "/put_blob", "input": {"$step": "nowhere"}}, {"id": "b", "component": "", "input": {}}],
    "output": {"x": {"$step": "missing"}},
}
UNUSED_STEPS = {
    "name": "unused",
    "description": "b is never needed, c runs anyway",
    "steps": [{"id": s, "component": "/put_blob", "input": {"data": 1}, **({"mustExecute": True} if s == "c" else {})} for s in ("a", "b", "c")],
    "output": {"x": {"$step": "a"}},
}
DUPLICATE_STEP = {
    "name": "dup",
    "description": "two steps a",
    "steps": [{"id": "a", "component": "/put_blob", "input": {}}, {"id": "a", "component": "/put_blob", "input": {}}],
    "output": {},
}
ENDLESS_FLOW = {
    "name": "endless",
    "description": "its one step never answers",
    "steps": [{"id": "wait", "component": "/python/silent", "input": {}}],
    "output": {"$step": "wait"},
}
POD = "127.0.0.1"
POD_PORT = 8089
UNANSWERED = -1
"""The status recorded for a request still unanswered at its timeout."""
DATA = {"data": {"b": 2, "a": [1.5, "x", None, True]}}
UNKNOWN_RUN = "0190c2a6-1c2d-7e3f-8a9b-0c1d2e3f4a5b"
UNKNOWN_FLOW = "0" * 64
OUR_EXTRA_FIELDS = {"health": {"plugins"}, "get run": {"traceId", "orchestratorId"}, "get a running run": {"traceId", "orchestratorId"}}
OUR_EXTRA_STEP_FIELDS = {"attempt", "instanceId", "startedAt", "completedAt", "callbacks"}
"""Each step's attempt, the pod that ran it and when (docs/limits.md): upstream 0.9 has none of them."""
UPSTREAM_ONLY_COMPONENTS = {"/openai", "/load_file"}


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: Any
    """Decoded JSON, or the text when the body is not JSON."""


@dataclass
class Ids:
    flow: str = ""
    run: str = ""
    batch_run: str = ""
    data_blob: str = ""
    endless_flow: str = ""
    running_run: str = ""


def request(client: httpx.Client, method: str, path: str, **options: Any) -> Answer:
    try:
        response = client.request(method, path, **options)
    except httpx.ReadTimeout:
        return Answer(UNANSWERED, None, "no answer within the timeout")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(response.status_code, response.headers.get("content-type"), body)


def exchanges(ids: Ids) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, options) of the whole conversation, in order; ids as this server gave them."""
    run_request = {"flowId": ids.flow, "input": [DATA], "overrides": {"put_blob": {"value": {"input": {"blob_type": "data"}}}}, "variables": {}}
    return [
        ("health", "GET", "/health", {}),
        ("components", "GET", "/components", {}),
        ("components without schemas", "GET", "/components", {"params": {"includeSchemas": "false"}}),
        ("store flow", "POST", "/flows", {"json": {"flow": FLOW}}),
        ("store flow dry run", "POST", "/flows", {"json": {"flow": FLOW, "dryRun": True}}),
        (
            "store flow with a fatal diagnostic",
            "POST",
            "/flows",
            {"json": {"flow": {"steps": [{"id": "a", "component": "/put_blob", "input": {"$step": "a"}}], "output": {"$step": "a"}}}},
        ),
        ("store flow with broken references", "POST", "/flows", {"json": {"flow": BROKEN_REFERENCES}}),
        ("store flow with a duplicate step", "POST", "/flows", {"json": {"flow": DUPLICATE_STEP}}),
        ("store flow with unused steps", "POST", "/flows", {"json": {"flow": UNUSED_STEPS}}),
        ("get flow", "GET", f"/flows/{ids.flow}", {}),
        ("run", "POST", "/runs", {"json": run_request}),
        ("batch run", "POST", "/runs", {"json": {"flowId": ids.flow, "input": [DATA, DATA], "maxConcurrency": 1}}),
        ("failed run", "POST", "/runs", {"json": {"flowId": ids.flow, "input": [{}]}}),
        ("list runs", "GET", "/runs", {}),
        ("list runs by status", "GET", "/runs", {"params": {"status": "completed", "limit": "5", "offset": "0"}}),
        ("get run", "GET", f"/runs/{ids.run}", {}),
        ("items", "GET", f"/runs/{ids.run}/items", {}),
        ("batch items", "GET", f"/runs/{ids.batch_run}/items", {}),
        ("steps", "GET", f"/runs/{ids.run}/steps", {}),
        ("run flow", "GET", f"/runs/{ids.run}/flow", {}),
        ("cancel a finished run", "POST", f"/runs/{ids.run}/cancel", {}),
        ("unknown flow", "GET", f"/flows/{UNKNOWN_FLOW}", {}),
        ("flow id that is not hex", "GET", "/flows/not-hex", {}),
        ("data blob as a flow", "GET", f"/flows/{ids.data_blob}", {}),
        ("run of an unknown flow", "POST", "/runs", {"json": {"flowId": UNKNOWN_FLOW, "input": [{}]}}),
        ("unknown run", "GET", f"/runs/{UNKNOWN_RUN}", {}),
        ("run id that is not a uuid", "GET", "/runs/not-a-uuid", {}),
        ("unknown status", "GET", "/runs", {"params": {"status": "done"}}),
        ("run without input", "POST", "/runs", {"json": {"flowId": ids.flow}}),
        ("run with input not a list", "POST", "/runs", {"json": {"flowId": ids.flow, "input": DATA}}),
        ("run with a wrongly typed field", "POST", "/runs", {"json": {"flowId": 7, "input": [DATA]}}),
        ("flow with steps as a mapping", "POST", "/flows", {"json": {"flow": {"steps": {"a": {}}}}}),
        ("malformed JSON", "POST", "/runs", {"content": b"{", "headers": {"content-type": "application/json"}}),
        ("no JSON content type", "POST", "/runs", {"content": b"{}"}),
        ("unknown route", "GET", "/nope", {}),
        ("wrong method", "PUT", "/runs", {}),
        ("store a flow whose step never ends", "POST", "/flows", {"json": {"flow": ENDLESS_FLOW}}),
        ("run that never ends", "POST", "/runs", {"json": {"flowId": ids.endless_flow, "input": [{}]}, "timeout": 2}),
        ("list running runs", "GET", "/runs", {"params": {"status": "running"}}),
        ("get a running run", "GET", f"/runs/{ids.running_run}", {}),
        ("items of a running run", "GET", f"/runs/{ids.running_run}/items", {}),
        ("steps of a running run", "GET", f"/runs/{ids.running_run}/steps", {}),
        ("delete a running run", "DELETE", f"/runs/{ids.running_run}", {}),
        ("cancel a running run", "POST", f"/runs/{ids.running_run}/cancel", {}),
        ("cancel a cancelled run", "POST", f"/runs/{ids.running_run}/cancel", {}),
        ("delete run", "DELETE", f"/runs/{ids.run}", {}),
        ("delete flow", "DELETE", f"/flows/{ids.flow}", {}),
    ]


def learn_ids(name: str, answer: Answer, ids: Ids) -> None:
    if name == "store flow":
        ids.flow = answer.body["flowId"]
    elif name == "run":
        ids.run = answer.body["runId"]
        ids.data_blob = answer.body["result"]["result"]["blob_id"]
    elif name == "batch run":
        ids.batch_run = answer.body["runId"]
    elif name == "store a flow whose step never ends":
        ids.endless_flow = answer.body["flowId"]
    elif name == "list running runs":
        ids.running_run = answer.body["runs"][0]["runId"]


def converse(api: str) -> dict[str, Answer]:
    ids = Ids()
    answers: dict[str, Answer] = {}
    with httpx.Client(base_url=api, timeout=30) as client:
        for position in range(len(exchanges(ids))):
            name, method, path, options = exchanges(ids)[position]  # built again: later paths use ids learnt so far
            answers[name] = request(client, method, path, **options)
            learn_ids(name, answers[name], ids)
    return answers


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Answer]]]:
    with both_servers_with_scripted_pod(tmp_path_factory.mktemp("rest-shapes"), POD, POD_PORT, "updiff") as servers:
        yield {side: converse(api) for side, api in servers.both().items()}


def shape(value: Any) -> Any:
    """The value with every scalar replaced by its JSON type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "null"


def comparable(name: str, body: Any, side: str) -> Any:
    """The body without our deliberate extras, upstream's extra builtins, schemas' content and diagnostics."""
    if not isinstance(body, dict):
        return body
    if side == "ours":
        body = {key: value for key, value in body.items() if key not in OUR_EXTRA_FIELDS.get(name, set())}
    if side == "ours" and isinstance(body.get("steps"), dict):
        body = {**body, "steps": {key: {k: v for k, v in step.items() if k not in OUR_EXTRA_STEP_FIELDS} for key, step in body["steps"].items()}}
    if "components" in body:
        body = {"components": [_schemas_as_objects(entry) for entry in body["components"] if entry["component"] not in UPSTREAM_ONLY_COMPONENTS]}
    if "diagnostics" in body:
        body = {**body, "diagnostics": {**body["diagnostics"], "diagnostics": "compared by place"}}
    return body


def _schemas_as_objects(component: dict[str, Any]) -> dict[str, Any]:
    return {key: {} if key.endswith("_schema") else value for key, value in component.items()}


def diagnostics_by_place(body: dict[str, Any]) -> dict[str, Any]:
    """Each diagnostic by ``kind at path``: code, level, message and kind-specific ``data``, as they are."""
    return {f"{d['kind']} at {d.get('path')}": d for d in body["diagnostics"]["diagnostics"]}


NAMES = [name for name, _, _, _ in exchanges(Ids())]


@pytest.mark.parametrize("name", NAMES)
def test_same_status(answers: dict[str, dict[str, Answer]], name: str) -> None:
    assert answers["ours"][name].status == answers["upstream"][name].status, (answers["upstream"][name], answers["ours"][name])


@pytest.mark.parametrize("name", NAMES)
def test_same_fields_and_types(answers: dict[str, dict[str, Answer]], name: str) -> None:
    upstream, ours = answers["upstream"][name], answers["ours"][name]
    if not isinstance(upstream.body, dict | list):
        pytest.skip(f"upstream answers {upstream.status} with a plain-text or empty body: {upstream.body[:80]!r}")
    assert shape(comparable(name, ours.body, "ours")) == shape(comparable(name, upstream.body, "upstream"))


def test_every_error_is_json_with_code_and_message(answers: dict[str, dict[str, Answer]]) -> None:
    errors = {name: answer for name, answer in answers["ours"].items() if answer.status >= 400}
    assert len(errors) >= 15
    for name, answer in errors.items():
        assert answer.content_type == "application/json", name
        assert answer.body["code"] == answer.status and isinstance(answer.body["message"], str) and answer.body["message"], name


@pytest.mark.parametrize("name", [name for name in NAMES if name.startswith("store flow")])
def test_diagnostics_say_what_upstreams_say(answers: dict[str, dict[str, Answer]], name: str) -> None:
    upstream, ours = (diagnostics_by_place(answers[side][name].body) for side in ("upstream", "ours"))
    assert ours.keys() <= upstream.keys()
    assert {place: ours[place] for place in ours} == {place: upstream[place] for place in ours}
