"""The stepflow plugin against real pods: the upstream reference pod and a scripted pod for faults."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtime_server.plugins.base import CallbackError, ComponentFailed, ExecuteRequest, TransportFailed
from runtime_server.plugins.remote.settings import RemoteSettings, SettingsError
from runtime_server.plugins.stepflow_http import StepflowHttpPlugin, create_plugin
from tests.e2e.scripted_pod import INSTANCE_ID, ScriptedPod
from tests.support.pods import start_pod
from wire_protocol import jsonrpc
from wire_protocol.messages import GetBlobParams, Observability, PutBlobParams

UPSTREAM_POD = "127.0.0.61"
SCRIPTED_POD = "127.0.0.69"
FAST = RemoteSettings(connect_timeout_seconds=1.0, idle_timeout_seconds=1.0, total_timeout_seconds=5.0, callback_timeout_seconds=1.0, connect_retries=3)


class BlobCallbacks:
    """The runtime side of blobs/* as protocol.md §5.7 defines it: SHA-256 of compact JSON."""

    def __init__(self) -> None:
        self.blobs: dict[str, Any] = {}
        self.calls: list[str] = []

    async def handle(self, method: str, params: Any) -> Any:
        self.calls.append(method)
        if isinstance(params, PutBlobParams):
            blob_id = hashlib.sha256(msgspec.json.encode(params.data)).hexdigest()
            self.blobs[blob_id] = params.data
            return {"blob_id": blob_id}
        if isinstance(params, GetBlobParams):
            if params.blob_id not in self.blobs:
                raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to get blob")
            return {"data": self.blobs[params.blob_id], "blob_type": "data"}
        raise CallbackError(jsonrpc.SERVER_ERROR, f"{method} is not served by this test")


def execute_request(component: str, input: Any, callbacks: Any = None, attempt: int = 1, **extra: Any) -> ExecuteRequest:
    observability = Observability(trace_id="ab" * 16, span_id="cd" * 8, run_id="run-1", flow_id="flow-1", step_id="step-1")
    return ExecuteRequest(component=component, input=input, attempt=attempt, observability=observability, callbacks=callbacks or BlobCallbacks(), **extra)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pod = start_pod("upstream", UPSTREAM_POD, tmp_path_factory.mktemp("pods"))
    yield f"http://{UPSTREAM_POD}:8080"
    pod.stop()


@pytest.fixture(scope="module")
def scripted_pod() -> Iterator[ScriptedPod]:
    pod = ScriptedPod(SCRIPTED_POD).start()
    yield pod
    pod.stop()


@pytest.fixture
async def upstream(upstream_pod: str) -> AsyncIterator[StepflowHttpPlugin]:
    plugin = StepflowHttpPlugin("fleet", upstream_pod, FAST)
    await plugin.start()
    yield plugin
    await plugin.close()


@pytest.fixture
async def scripted(scripted_pod: ScriptedPod) -> AsyncIterator[StepflowHttpPlugin]:
    scripted_pod.received.clear()
    scripted_pod.refuse_answers = False
    plugin = StepflowHttpPlugin("scripted", scripted_pod.url, FAST)
    await plugin.start()
    yield plugin
    await plugin.close()


async def wait_healthy(plugin: StepflowHttpPlugin, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not plugin.health().healthy:
        assert time.monotonic() < deadline, plugin.health()
        await asyncio.sleep(0.02)


# -- against the upstream reference pod (stepflow-py 0.9.2) ------------------------------


@pytest.mark.anyio
async def test_initializes_and_lists_components(upstream: StepflowHttpPlugin) -> None:
    await wait_healthy(upstream)
    names = {info.component for info in await upstream.list_components()}
    assert {"/double", "/store_and_retrieve_blob", "/fibonacci"} <= names


@pytest.mark.anyio
async def test_plain_json_execute(upstream: StepflowHttpPlugin) -> None:
    assert await upstream.execute(execute_request("/double", {"value": 3})) == {"result": 6.0}


@pytest.mark.anyio
async def test_sse_execute_answers_blob_callbacks(upstream: StepflowHttpPlugin) -> None:
    data = {"test": "value1", "number": 1, "timestamp": "1700000000"}
    callbacks = BlobCallbacks()
    output = await upstream.execute(execute_request("/store_and_retrieve_blob", {"data": data}, callbacks))
    assert output == {"blob_id": "7d84a3839fb9ebb132da775099cd051969828b40f1e8979c868f5eab026cb002", "retrieved_data": data}
    assert callbacks.calls == ["blobs/put", "blobs/get"]


@pytest.mark.anyio
async def test_component_error_is_component_failed(upstream: StepflowHttpPlugin) -> None:
    with pytest.raises(ComponentFailed) as failure:
        await upstream.execute(execute_request("/fibonacci", {"value": 31}))
    assert failure.value.code == jsonrpc.EXECUTION_ERROR
    assert "between 0 and 30" in failure.value.message


@pytest.mark.anyio
async def test_concurrent_executions_share_one_client(upstream: StepflowHttpPlugin) -> None:
    outputs = await asyncio.gather(*(upstream.execute(execute_request("/square", {"value": n})) for n in range(40)))
    assert [o["result"] for o in outputs] == [float(n * n) for n in range(40)]


# -- startup without the fleet -----------------------------------------------------------


@pytest.mark.anyio
async def test_starts_with_the_fleet_down_and_connects_when_it_comes_up(tmp_path: Path) -> None:
    address = "127.0.0.62"
    plugin = StepflowHttpPlugin("late", f"http://{address}:8080", RemoteSettings(initialize_retry_seconds=0.2, connect_retries=0, connect_timeout_seconds=0.5))
    await plugin.start()
    try:
        await asyncio.sleep(0.3)
        health = plugin.health()
        assert not health.healthy and "initialize failed" in health.detail["lastError"]
        with pytest.raises(TransportFailed, match=r"cannot reach http://127.0.0.62:8080"):
            await plugin.execute(execute_request("/double", {"value": 1}))
        pod = await asyncio.to_thread(start_pod, "upstream", address, tmp_path)
        try:
            await wait_healthy(plugin, 10)
            assert await plugin.execute(execute_request("/double", {"value": 2})) == {"result": 4.0}
        finally:
            pod.stop()
    finally:
        await plugin.close()


# -- faults, on the scripted pod ---------------------------------------------------------


@pytest.mark.anyio
async def test_sends_attempt_observability_traceparent_and_protocol_headers(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    output = await scripted.execute(execute_request("/echo", {"x": 1}, attempt=2, traceparent=traceparent))
    assert output["params"] == {
        "component": "/echo",
        "input": {"x": 1},
        "attempt": 2,
        "observability": {"trace_id": "ab" * 16, "span_id": "cd" * 8, "run_id": "run-1", "flow_id": "flow-1", "step_id": "step-1"},
    }
    assert output["traceparent"] == traceparent
    sent_headers, _ = scripted_pod.executes()[-1]
    assert sent_headers["content-type"] == "application/json"
    assert sent_headers["accept"] == "application/json, text/event-stream"
    assert "stepflow-instance-id" not in sent_headers


@pytest.mark.anyio
async def test_callback_answers_carry_the_instance_id_and_unknown_methods_get_an_error(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    calls = [
        ["blobs/put", {"data": {"k": 1}, "blob_type": "data"}],
        ["made/up", {}],
        ["blobs/get", {"blob_id": "0" * 64}],
        ["blobs/put", {"blob_type": "data"}],
    ]
    output = await scripted.execute(execute_request("/ask", {"calls": calls}))
    put, unknown, missing, bad_params = output["answers"]
    assert put["result"] == {"blob_id": hashlib.sha256(b'{"k":1}').hexdigest()}
    assert unknown["error"] == {"code": -32601, "message": "Method not found: made/up"}
    assert missing["error"] == {"code": -32000, "message": "Failed to get blob"}
    assert bad_params["error"]["code"] == -32602
    answers = scripted_pod.callback_answers()
    assert len(answers) == 4 and all(h["stepflow-instance-id"] == INSTANCE_ID for h, _ in answers)


@pytest.mark.anyio
async def test_refused_callback_answer_aborts_the_execution_naming_pod_and_request(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    scripted_pod.refuse_answers = True
    started = time.monotonic()
    with pytest.raises(TransportFailed) as failure:
        await scripted.execute(execute_request("/ask", {"calls": [["blobs/put", {"data": {}, "blob_type": "data"}]]}))
    assert time.monotonic() - started < 2.0
    assert failure.value.retriable
    assert INSTANCE_ID in failure.value.message and "HTTP 503" in failure.value.message
    assert "request " + scripted_pod.executes()[-1][1]["id"] in failure.value.message


@pytest.mark.anyio
async def test_sequential_calls_reuse_one_connection(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    await wait_healthy(scripted)
    scripted_pod.client_ports.clear()
    for n in range(20):
        assert (await scripted.execute(execute_request("/echo", {"n": n})))["params"]["input"] == {"n": n}
    assert len(scripted_pod.client_ports) == 1


@pytest.mark.anyio
async def test_503_is_retried_with_backoff_then_succeeds(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    scripted_pod.busy_left = 2
    output = await scripted.execute(execute_request("/busy", {}))
    assert output["params"]["attempt"] == 1
    assert len(scripted_pod.executes()) == 3


@pytest.mark.anyio
async def test_503_beyond_the_budget_is_a_retriable_transport_failure(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    scripted_pod.busy_left = 100
    try:
        with pytest.raises(TransportFailed, match="HTTP 503") as failure:
            await scripted.execute(execute_request("/busy", {}))
    finally:
        scripted_pod.busy_left = 0
    assert failure.value.retriable and failure.value.attempts == FAST.connect_retries + 1


@pytest.mark.anyio
async def test_component_errors_are_not_retried(scripted: StepflowHttpPlugin, scripted_pod: ScriptedPod) -> None:
    with pytest.raises(ComponentFailed, match="boom") as failure:
        await scripted.execute(execute_request("/fail", {}))
    assert failure.value.code == -32003
    assert len(scripted_pod.executes()) == 1


@pytest.mark.anyio
async def test_silent_stream_ends_at_the_idle_deadline(scripted: StepflowHttpPlugin) -> None:
    started = time.monotonic()
    with pytest.raises(TransportFailed, match=f"pod {INSTANCE_ID} .* was silent for 1.0s"):
        await scripted.execute(execute_request("/silent", {}))
    assert 0.9 < time.monotonic() - started < 2.0


@pytest.mark.anyio
async def test_total_deadline_of_the_request_wins(scripted: StepflowHttpPlugin) -> None:
    with pytest.raises(TransportFailed, match=r"within the 0.3s deadline"):
        await scripted.execute(execute_request("/silent", {}, deadline_seconds=0.3))


@pytest.mark.anyio
async def test_stream_without_final_response_is_a_transport_error(scripted: StepflowHttpPlugin) -> None:
    with pytest.raises(TransportFailed, match=f"stream from pod {INSTANCE_ID} .* ended without a final response"):
        await scripted.execute(execute_request("/no_final", {}))


@pytest.mark.anyio
async def test_accepts_any_standard_sse_framing(scripted: StepflowHttpPlugin) -> None:
    assert await scripted.execute(execute_request("/odd_framing", {})) == {"word": "naïve"}


@pytest.mark.anyio
async def test_plain_text_502_is_a_retriable_transport_failure(scripted: StepflowHttpPlugin) -> None:
    with pytest.raises(TransportFailed, match="HTTP 502: Bad Gateway") as failure:
        await scripted.execute(execute_request("/bad_gateway", {}))
    assert failure.value.retriable


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"type": "stepflow"}, "'url' must be an http:// or https:// URL, got None"),
        ({"type": "stepflow", "url": "localhost:8080"}, "'url' must be an http"),
        ({"type": "stepflow", "command": "uv", "args": []}, "subprocess plugins"),
        ({"type": "stepflow", "url": "http://x", "timeout": 5}, "unknown option(s) ['timeout']"),
        ({"type": "stepflow", "url": "http://x", "idleTimeoutSeconds": "soon"}, "Expected `float`"),
        ({"type": "stepflow", "url": "http://x", "connectRetries": -1}, "connectRetries must not be negative"),
    ],
)
def test_bad_plugin_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        create_plugin("fleet", options, None)


def test_plugin_options_set_the_deadlines() -> None:
    plugin = create_plugin("fleet", {"type": "stepflow", "url": "http://x:1", "idleTimeoutSeconds": 2, "connectRetries": 0}, None)
    assert plugin._settings == RemoteSettings(idle_timeout_seconds=2.0, connect_retries=0)
