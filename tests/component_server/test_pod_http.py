"""The demo pod over a real socket: the wire behaviour the upstream runtime relies on."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.component_server.conftest import Pod, SseExecution, blob_id_of, execute_body
from tests.support.processes import python_process
from wire_protocol import jsonrpc
from wire_protocol.headers import REQUEST_HEADERS


def test_health_names_the_instance(demo_pod: Pod) -> None:
    response = httpx.get(demo_pod.url + "/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "healthy"
    assert body["instanceId"].startswith("ours-pod-31-") and len(body["instanceId"]) == len("ours-pod-31-") + 8


def test_initialize_then_initialized(demo_pod: Pod) -> None:
    response = demo_pod.rpc("initialize", {"runtime_protocol_version": 1})
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.json() == {"id": "t1", "result": {"server_protocol_version": 1}, "jsonrpc": "2.0"}
    notified = demo_pod.post(b'{"jsonrpc":"2.0","method":"initialized","params":{}}')
    assert (notified.status_code, notified.content) == (202, b'""')


def test_components_list_and_info_carry_json_schemas(demo_pod: Pod) -> None:
    listed = demo_pod.rpc("components/list", {}).json()["result"]["components"]
    assert [entry["component"] for entry in listed] == [
        "/double",
        "/square",
        "/add",
        "/multiply",
        "/compute_intensive_task",
        "/fibonacci",
        "/store_and_retrieve_blob",
    ]
    info = demo_pod.rpc("components/info", {"component": "/add"}).json()["result"]["info"]
    assert info["input_schema"]["$defs"]["PairInput"]["properties"] == {"a": {"type": "number"}, "b": {"type": "number"}}
    assert info["output_schema"]["$defs"]["Result"]["required"] == ["result"]
    missing = demo_pod.rpc("components/info", {"component": "/nope"}).json()
    assert missing["error"]["code"] == -32001 and missing["error"]["data"] == {"component": "/nope"}


@pytest.mark.parametrize(
    ("component", "value", "output"),
    [
        ("/double", {"value": 3}, {"result": 6.0}),
        ("/square", {"value": 6.0}, {"result": 36.0}),
        ("/add", {"a": 3, "b": 36.0}, {"result": 39.0}),
        ("/multiply", {"a": 2.5, "b": 4}, {"result": 10.0}),
        ("/fibonacci", {"value": 8}, {"result": 21.0}),
    ],
)
def test_plain_components_answer_json(demo_pod: Pod, component: str, value: dict[str, float], output: dict[str, float]) -> None:
    response = demo_pod.execute(component, value)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    assert response.json() == {"id": "e1", "result": {"output": output}, "jsonrpc": "2.0"}


def test_plain_answers_name_the_pod_like_streams_do(demo_pod: Pod) -> None:
    """The runtime records which pod ran each step from this header, so plain JSON answers carry it too."""
    instance_id = httpx.get(demo_pod.url + "/health").json()["instanceId"]
    answered = demo_pod.execute("/double", {"value": 3})
    failed = demo_pod.execute("/fibonacci", {"value": 31})
    listed = demo_pod.rpc("components/list", {})
    assert [r.headers.get("stepflow-instance-id") for r in (answered, failed, listed)] == [instance_id] * 3


def test_compute_intensive_task(demo_pod: Pod) -> None:
    output = demo_pod.execute("/compute_intensive_task", {"value": 5, "iterations": 3}).json()["result"]["output"]
    assert output["result"] == pytest.approx(((5 * 1.1 + 0.5) * 1.1 + 0.5) * 1.1 + 0.5)
    assert output["processing_time_ms"] >= 0


@pytest.mark.parametrize(
    ("component", "value", "message"),
    [
        ("/double", {"valeu": 3}, "missing required field `value`"),
        ("/double", {"value": "3"}, "Expected `float`, got `str` - at `$.value`"),
        ("/fibonacci", {"value": 31}, "value must be at most 30, got 31"),
        ("/fibonacci", {"value": -1}, "value must be at least 0, got -1"),
    ],
)
def test_component_errors_name_the_problem(demo_pod: Pod, component: str, value: dict[str, object], message: str) -> None:
    response = demo_pod.execute(component, value)
    error = response.json()["error"]
    assert response.status_code == 200 and error["code"] == -32003 and error["data"] == {}
    assert error["message"].startswith("Component execution failed: ") and message in error["message"]


def test_unknown_component_is_named_once(demo_pod: Pod) -> None:
    error = demo_pod.execute("/triple", {"value": 1}).json()["error"]
    assert error["code"] == -32001 and error["data"] == {"component": "/triple"}
    assert error["message"].startswith("Component '/triple' not found (this pod serves: /double, ")


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"accept": REQUEST_HEADERS["accept"]}, 415, "Content-Type must be application/json"),
        ({"content-type": "text/plain", "accept": REQUEST_HEADERS["accept"]}, 415, "Content-Type must be application/json"),
        ({"content-type": "application/json"}, 406, "Accept header must include application/json and text/event-stream"),
        ({"content-type": "application/json", "accept": "application/json"}, 406, "Accept header must include"),
    ],
)
def test_wrong_headers_are_refused_with_json(demo_pod: Pod, headers: dict[str, str], status: int, message: str) -> None:
    response = demo_pod.post(execute_body("/double", {"value": 1}), headers)
    assert response.status_code == status and message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Failed to decode message"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]', "Failed to decode message"),
        (b'{"jsonrpc":"2.0","id":1,"method":"components/run","params":{}}', "Unknown method 'components/run'"),
        (b'{"jsonrpc":"2.0","method":"components/list","params":{}}', "only notification a component server takes is 'initialized'"),
    ],
    ids=["malformed", "batch", "unknown-method", "unknown-notification"],
)
def test_undecodable_messages_get_400_without_id(demo_pod: Pod, body: bytes, message: str) -> None:
    response = demo_pod.post(body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600 and message in response.json()["error"]["message"]
    assert "id" not in response.json()


def test_post_back_for_an_unknown_id_is_a_clear_404(demo_pod: Pod) -> None:
    response = demo_pod.post(jsonrpc.success("never-asked", {"blob_id": "x"}))
    assert response.status_code == 404
    body = response.json()
    assert body["id"] == "never-asked" and "no pending request on this pod" in body["error"]["message"]


def test_context_component_streams_callbacks_then_its_answer(demo_pod: Pod) -> None:
    data = {"test": "value1", "number": 1, "timestamp": "1700000000"}
    execution = SseExecution.start(demo_pod, {"data": data})
    try:
        assert execution.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert execution.instance_id == httpx.get(demo_pod.url + "/health").json()["instanceId"]
        put = execution.next_message()
        assert (put["method"], put["params"]["data"], put["params"]["blob_type"]) == ("blobs/put", data, "data")
        assert put["params"]["observability"]["step_id"] == "step-1"
        assert execution.answer(put).content == b'""'
        final = execution.run_to_end()
    finally:
        execution.close()
    assert final["result"]["output"] == {"blob_id": "7d84a3839fb9ebb132da775099cd051969828b40f1e8979c868f5eab026cb002", "retrieved_data": data}
    assert blob_id_of(data) == final["result"]["output"]["blob_id"]


def test_a_runtime_error_answer_fails_the_component(demo_pod: Pod) -> None:
    execution = SseExecution.start(demo_pod, {"data": {"k": 1}})
    try:
        put = execution.next_message()
        execution.pod.post(jsonrpc.success(put["id"], {"blob_id": "unknown"}))
        get = execution.next_message()
        assert execution.answer(get).status_code == 202
        final = execution.next_message()
    finally:
        execution.close()
    assert final["error"]["code"] == -32003
    assert "blobs/get failed: runtime error -32000: Failed to get blob" in final["error"]["message"]


def test_sse_bytes_on_the_wire(demo_pod: Pod) -> None:
    """Each event is exactly `data: <json>\\n\\n` in a chunk of its own: all upstream accepts."""
    body = execute_body("/store_and_retrieve_blob", {"data": {"é": "€"}}, "raw-1")
    with socket.create_connection((demo_pod.address, 8080), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nhost: pod\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        stream = sock.makefile("rb")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += stream.readline()
        assert b"transfer-encoding: chunked" in head and b"stepflow-instance-id: ours-pod-31-" in head
        chunks = []
        while (size := int(stream.readline().strip(), 16)) > 0:
            chunk = stream.read(size)
            stream.readline()
            chunks.append(chunk)
            assert chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n") and chunk.count(b"\n") == 2
            message = json.loads(chunk[len(b"data: ") :])
            if "method" in message:
                answer = {"blob_id": blob_id_of(message["params"]["data"])} if message["method"] == "blobs/put" else {"data": {"é": "€"}, "blob_type": "data"}
                assert demo_pod.post(jsonrpc.success(message["id"], answer)).status_code == 202
    assert len(chunks) == 3
    assert json.loads(chunks[-1][6:])["result"]["output"]["retrieved_data"] == {"é": "€"}


def test_each_execution_logs_one_line_with_its_ids_and_trace(demo_pod: Pod) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = demo_pod.execute("/square", {"value": 2}, "logged-1", {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [msgspec.json.decode(line) for line in demo_pod.process.log().splitlines() if '"request_id":"logged-1"' in line]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1, demo_pod.process.log()
    line = lines[0]
    assert line["event"] == "execution_finished" and line["outcome"] == "success" and line["component"] == "/square"
    assert (line["run_id"], line["step_id"], line["attempt"], line["trace_id"]) == ("run-1", "step-1", 1, trace_id)
    assert line["instance_id"].startswith("ours-pod-31-") and line["duration_ms"] >= 0


def test_metrics_count_executions_by_outcome(demo_pod: Pod) -> None:
    before_ok = demo_pod.metric("component_executions_total", component="/multiply", outcome="success")
    before_error = demo_pod.metric("component_executions_total", component="/multiply", outcome="error")
    demo_pod.execute("/multiply", {"a": 1, "b": 2})
    demo_pod.execute("/multiply", {"a": 1})
    assert demo_pod.metric("component_executions_total", component="/multiply", outcome="success") == before_ok + 1
    assert demo_pod.metric("component_executions_total", component="/multiply", outcome="error") == before_error + 1
    assert demo_pod.metric("component_execution_duration_seconds_count", component="/multiply") >= 2
    assert demo_pod.metric("component_executions_in_flight") == 0
    assert demo_pod.metric("component_server_draining") == 0


def test_port_zero_binds_a_free_port_and_announces_it(log_dir: Path) -> None:
    """What a `command` (subprocess) plugin reads from stdout (protocol.md §11)."""
    pod = python_process("pod-port-zero", ["-m", "component_server.demo", "--host", "127.0.0.37", "--port", "0", "--metrics-port", "0"], log_dir).start()
    try:
        deadline = time.monotonic() + 10
        while not (announced := re.search(r'^\{"port": (\d+)\}$', pod.log(), re.MULTILINE)):
            assert pod.alive() and time.monotonic() < deadline, pod.log()
            time.sleep(0.05)
        health = httpx.get(f"http://127.0.0.37:{announced.group(1)}/health")
        assert health.json()["status"] == "healthy"
    finally:
        pod.stop()
