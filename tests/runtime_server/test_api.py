"""The REST API over a real socket: what a client sees, including every kind of bad request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.runtime import start_runtime

ADDRESS = "127.0.0.52"
CONFIG = """
plugins:
  builtin: {type: builtin}
routes:
  "/builtin/{*component}": [{plugin: builtin}]
  "/{*component}": [{plugin: builtin}]
"""
FLOW = {
    "name": "blob-roundtrip",
    "description": "put then get",
    "steps": [
        {"id": "put", "component": "/builtin/put_blob", "input": {"data": {"$input": "data"}, "blob_type": "data"}},
        {"id": "get", "component": "/get_blob", "input": {"blob_id": {"$step": "put", "path": "blob_id"}}},
        {"id": "unused", "component": "/get_blob", "input": {"blob_id": "0" * 64}},
    ],
    "output": {"blob_id": {"$step": "put", "path": "blob_id"}, "data": {"$step": "get", "path": "data"}},
}
DEMO_DATA = {"test": "value1", "number": 1, "timestamp": "1700000000"}
DEMO_BLOB_ID = "7d84a3839fb9ebb132da775099cd051969828b40f1e8979c868f5eab026cb002"
SLOW_FLOW = {
    "name": "slow",
    "steps": [
        {
            "id": "loop",
            "component": "/iterate",
            "input": {"flow": {"$literal": {"steps": [], "output": {"next": {"$input": "$"}}}}, "initial_input": 0, "max_iterations": 1000000},
        }
    ],
    "output": {"$step": "loop"},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log_dir = tmp_path_factory.mktemp("api")
    config = log_dir / "config.yml"
    config.write_text(CONFIG)
    process, base = start_runtime(config, ADDRESS, log_dir, metrics_port=9152)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            yield client
    finally:
        process.stop()


def assert_json_error(response: httpx.Response, status: int, fragment: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == status and fragment in body["message"], body
    return body


def store(api: httpx.Client, flow: dict[str, Any]) -> str:
    response = api.post("/flows", json={"flow": flow})
    assert response.status_code == 200 and response.json()["stored"] is True, response.text
    return response.json()["flowId"]


def test_health_reports_version_and_plugins(api: httpx.Client) -> None:
    body = api.get("/health").json()
    assert body["status"] == "healthy" and body["version"] == "0.9.0"
    assert body["plugins"]["builtin"]["healthy"] is True


def test_flows_are_stored_by_content_hash_fetched_normalised_and_really_deleted(api: httpx.Client) -> None:
    first = api.post("/flows", json={"flow": FLOW}).json()
    assert first["stored"] is True and len(first["flowId"]) == 64 and first["diagnostics"]["numFatal"] == 0
    assert api.post("/flows", json={"flow": FLOW}).json()["flowId"] == first["flowId"]
    fetched = api.get(f"/flows/{first['flowId']}").json()
    assert fetched["flowId"] == first["flowId"]
    assert fetched["flow"]["steps"][1]["input"] == {"blob_id": {"$step": "put", "path": "$.blob_id"}}
    assert api.delete(f"/flows/{first['flowId']}").status_code == 200
    assert_json_error(api.get(f"/flows/{first['flowId']}"), 404, "Flow not found")
    assert_json_error(api.delete(f"/flows/{first['flowId']}"), 404, "Flow not found")
    assert_json_error(api.get("/flows/not-hex"), 404, "Flow not found")


def test_fatal_flow_is_not_stored_and_reports_step_and_path(api: httpx.Client) -> None:
    flow = {"steps": [{"id": "a", "component": "/eval", "input": {"$step": "b"}}, {"id": "b", "component": "/eval"}], "output": {"$step": "a"}}
    body = api.post("/flows", json={"flow": flow}).json()
    assert body["stored"] is False
    [fatal] = [d for d in body["diagnostics"]["diagnostics"] if d["level"] == "fatal"]
    assert fatal["kind"] == "undefinedStepReference" and fatal["path"] == "$.steps[0].input"
    assert_json_error(api.post("/runs", json={"flowId": body["flowId"], "input": [{}]}), 404, f"Workflow '{body['flowId']}' not found")
    inline = assert_json_error(api.post("/runs", json={"flow": flow, "input": [{}]}), 400, "$.steps[0].input")
    assert inline["diagnostics"]["numFatal"] == 1


def test_request_bodies_take_null_as_absent_and_name_required_keys_given_as_null(api: httpx.Client) -> None:
    stored = api.post("/flows", json={"flow": FLOW, "dryRun": None}).json()
    assert stored["stored"] is True
    run = {"flowId": stored["flowId"], "flow": None, "input": [{"data": DEMO_DATA}], "variables": None, "maxConcurrency": None, "wait": None}
    created = api.post("/runs", json={**run, "overrides": {"steps": {"unused": {"value": {"input": {"blob_id": "1" * 64}}}}}}).json()
    assert created["status"] == "completed", created
    assert list(api.get(f"/runs/{created['runId']}").json()["overrides"]) == ["unused"]  # stepflow-py 0.9.2's wrapper taken off
    assert_json_error(api.post("/flows", json={"flow": None}), 422, "flow is required")
    assert_json_error(api.post("/flows", json={"flow": None, "dryRun": None}), 422, "missing required field `flow`")
    assert_json_error(api.post("/runs", json={**run, "input": None}), 422, "input is required")


def test_run_a_stored_flow_and_read_it_back(api: httpx.Client) -> None:
    flow_id = store(api, FLOW)
    created = api.post("/runs", json={"flowId": flow_id, "input": [{"data": DEMO_DATA}]}).json()
    assert created["status"] == "completed" and created["itemCount"] == 1
    assert created["result"] == {"outcome": "success", "result": {"blob_id": DEMO_BLOB_ID, "data": DEMO_DATA}}
    run_id = created["runId"]
    details = api.get(f"/runs/{run_id}").json()
    assert details["inputs"] == [{"data": DEMO_DATA}] and details["rootRunId"] == run_id and details["flowName"] == "blob-roundtrip"
    assert details["items"] == {"total": 1, "completed": 1, "running": 0, "failed": 0, "cancelled": 0}
    steps = api.get(f"/runs/{run_id}/steps").json()["steps"]
    assert list(steps) == ["put", "get", "unused"]
    assert steps["put"]["component"] == "/builtin/put_blob" and steps["get"]["status"] == "completed"
    assert steps["unused"] == {"stepId": "unused", "component": "/get_blob", "status": "blocked"}
    assert api.get(f"/runs/{run_id}/flow").json()["flowId"] == flow_id
    items = api.get(f"/runs/{run_id}/items").json()
    assert items["itemCount"] == 1 and items["items"][0]["result"]["outcome"] == "success"
    kinds = [event["kind"] for event in api.get(f"/runs/{run_id}/events").json()["events"]]
    assert kinds == ["run_started", "step_started", "step_succeeded", "step_started", "step_succeeded", "item_completed", "run_completed"]


def test_inline_yaml_flow_batch_with_failures(api: httpx.Client) -> None:
    flow_yaml = "name: inline\nsteps:\n- id: g\n  component: /get_blob\n  input: {blob_id: {$input: id}}\noutput: {$step: g, path: data}\n"
    created = api.post("/runs", json={"flow": flow_yaml, "input": [{"id": "0" * 64}, {"id": "bad"}], "maxConcurrency": 1}).json()
    assert created["status"] == "failed" and "result" not in created
    items = api.get(f"/runs/{created['runId']}/items").json()["items"]
    assert [item["status"] for item in items] == ["failed", "failed"]
    assert "64 lowercase hex" in str(items[1]["result"]["error"])


def test_wait_false_answers_202_at_once_and_events_stream_while_live(api: httpx.Client) -> None:
    response = api.post("/runs", json={"flow": SLOW_FLOW, "input": [{}], "wait": False})
    assert response.status_code == 202 and response.json()["status"] == "running"
    run_id = response.json()["runId"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "running"
    assert_json_error(api.delete(f"/runs/{run_id}"), 409, "still running")
    with api.stream("GET", f"/runs/{run_id}/events", headers={"accept": "text/event-stream"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = msgspec.json.decode(next(line for line in lines if line.startswith("data: "))[6:])
        assert first["kind"] == "run_started"
        cancelled = api.post(f"/runs/{run_id}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["completedAt"]
        kinds = [msgspec.json.decode(line[6:])["kind"] for line in lines if line.startswith("data: ")]
    assert kinds[-1] == "run_completed"
    assert_json_error(api.post(f"/runs/{run_id}/cancel"), 409, "cannot be cancelled (status: Cancelled)")


def test_list_runs_is_paged_and_filtered(api: httpx.Client) -> None:
    flow = {"name": "listed", "steps": [], "output": {"$input": "$"}}
    flow_id = store(api, flow)
    for value in range(3):
        api.post("/runs", json={"flowId": flow_id, "input": [value]})
    listed = api.get("/runs", params={"flowName": "listed", "limit": 2}).json()["runs"]
    assert len(listed) == 2 and all(run["flowName"] == "listed" for run in listed)
    assert listed[0]["createdAt"] >= listed[1]["createdAt"]
    rest = api.get("/runs", params={"flowName": "listed", "limit": 2, "offset": 2}).json()["runs"]
    assert len(rest) == 1 and rest[0]["runId"] not in {run["runId"] for run in listed}
    assert all(run["status"] == "completed" for run in api.get("/runs", params={"status": "completed"}).json()["runs"])
    assert_json_error(api.get("/runs", params={"status": "done"}), 400, "unknown status 'done'")
    assert_json_error(api.get("/runs", params={"limit": "x"}), 400, "limit must be an integer")


def test_delete_run_really_deletes(api: httpx.Client) -> None:
    run_id = api.post("/runs", json={"flow": {"steps": [], "output": 1}, "input": [{}]}).json()["runId"]
    assert api.delete(f"/runs/{run_id}").status_code == 200
    assert_json_error(api.get(f"/runs/{run_id}"), 404, f"Execution '{run_id}' not found")


BAD_REQUESTS = [
    ("empty input list", {"json": {"flow": {"steps": []}, "input": []}}, 400, "empty list"),
    ("input not a list", {"json": {"flow": {"steps": []}, "input": {"a": 1}}}, 422, "wrap a single input as [input]"),
    ("no input", {"json": {"flow": {"steps": []}}}, 422, "input is required"),
    ("neither flow nor flowId", {"json": {"input": [1]}}, 400, "exactly one of flowId"),
    ("unknown flow", {"json": {"flowId": "a" * 64, "input": [1]}}, 404, "not found"),
    ("bad json", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("truncated json", {"content": b'{"input": [1', "headers": {"content-type": "application/json"}}, 400, "truncated"),
    (
        "lone surrogate",
        {"content": b'{"flow": {"steps": []}, "input": [{"k": "x\\ud800"}]}', "headers": {"content-type": "application/json"}},
        400,
        "half a UTF-16 surrogate pair",
    ),
    ("not json content type", {"content": b"{}", "headers": {"content-type": "application/yaml"}}, 415, "Content-Type: application/json"),
    ("wrong field type", {"json": {"flowId": 7, "input": [1]}}, 422, "Expected `str | null`"),
    ("unparseable flow", {"json": {"flow": {"steps": {"a": {}}}, "input": [1]}}, 422, "pre-v1 layout"),
    ("negative concurrency", {"json": {"flow": {"steps": []}, "input": [1], "maxConcurrency": -1}}, 400, "maxConcurrency"),
]


@pytest.mark.parametrize(("name", "request_kwargs", "status", "fragment"), BAD_REQUESTS, ids=[row[0] for row in BAD_REQUESTS])
def test_bad_run_requests_get_clear_json_errors(api: httpx.Client, name: str, request_kwargs: dict[str, Any], status: int, fragment: str) -> None:
    assert_json_error(api.post("/runs", **request_kwargs), status, fragment)


def test_unknown_routes_methods_and_run_ids_are_json_errors(api: httpx.Client) -> None:
    assert_json_error(api.get("/nope"), 404, "No such endpoint")
    assert_json_error(api.put("/runs"), 405, "not allowed")
    assert_json_error(api.get("/runs/not-a-uuid"), 400, "expected a UUID")
    assert_json_error(api.get("/runs/0190c2a6-1c2d-7e3f-8a9b-0c1d2e3f4a5b/steps"), 404, "not found")


def test_components_and_openapi(api: httpx.Client) -> None:
    components = api.get("/components").json()["components"]
    names = [entry["component"] for entry in components]
    assert names == sorted(names) and {"/eval", "/map", "/iterate", "/put_blob", "/get_blob"} <= set(names)
    assert "input_schema" in components[0]
    assert "input_schema" not in api.get("/components", params={"includeSchemas": "false"}).json()["components"][0]
    document = api.get("/openapi.json").json()
    assert "/api/v1/runs/{run_id}/events" in document["paths"] and "post" in document["paths"]["/api/v1/runs"]


def test_metrics_count_runs_by_status_and_flow(api: httpx.Client) -> None:
    api.post("/runs", json={"flow": {"name": "metered", "steps": [], "output": 1}, "input": [{}]})
    text = httpx.get(f"http://{ADDRESS}:9152/metrics").text
    assert 'runtime_runs_total{flow="metered",status="completed"} 1.0' in text
    for name in (
        "runtime_run_duration_seconds_bucket",
        "runtime_steps_in_flight",
        "runtime_runs_in_flight",
        "runtime_blob_store_bytes",
        "runtime_run_store_runs",
        "runtime_run_store_evictions_total",
    ):
        assert name in text


def test_a_run_joins_the_callers_trace_and_otherwise_starts_its_own(api: httpx.Client) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {"flow": FLOW, "input": [{"data": DEMO_DATA}]}
    joined = api.post("/runs", json=body, headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}).json()
    fresh = api.post("/runs", json=body, headers={"traceparent": "not a traceparent"}).json()
    assert api.get(f"/runs/{joined['runId']}").json()["traceId"] == caller_trace
    assert api.get(f"/runs/{fresh['runId']}").json()["traceId"] not in (caller_trace, None)


def test_bearer_token_guards_everything_but_health(tmp_path: Path) -> None:
    process, base = start_runtime(None, "127.0.0.53", tmp_path, env={"STEPFLOW_API_TOKEN": "s3cret"})
    try:
        assert httpx.get(f"{base}/health").status_code == 200
        assert_json_error(httpx.get(f"{base}/runs"), 401, "bearer token")
        assert_json_error(httpx.get(f"{base}/runs", headers={"authorization": "Bearer wrong"}), 401, "bearer token")
        assert httpx.get(f"{base}/runs", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{base}/runs", headers={"authorization": "bearer s3cret"}).status_code == 200, "the scheme is case-insensitive (RFC 9110)"
    finally:
        process.stop()


def test_a_bad_config_stops_startup_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text('plugins: {b: {type: builtin}}\nroutes: {"/x": [{plugin: ghost}]}\n')
    from tests.support.processes import python_process

    process = python_process(
        "runtime-bad", ["-m", "runtime_server", "--config", str(config), "--host", "127.0.0.54", "--port", "7841", "--metrics-port", "0"], tmp_path
    )
    process.start()
    deadline = time.monotonic() + 10
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.alive() and process.process is not None and process.process.returncode == 2
    assert "names plugin 'ghost', which is not configured" in process.log()


def test_cors_is_permissive_for_browsers_and_answers_to_other_clients_vary_with_origin(api: httpx.Client) -> None:
    preflight = api.options(
        "/runs", headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"] and preflight.headers["access-control-allow-headers"] == "content-type"
    from_browser = api.get("/health", headers={"Origin": "https://ui.example"})
    assert from_browser.headers["access-control-allow-origin"] == "*"
    for response in (api.get("/health"), api.get("/no-such-endpoint")):
        assert "access-control-allow-origin" not in response.headers
        assert response.headers.get_list("vary") == ["Origin"], response.headers
