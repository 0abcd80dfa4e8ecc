"""The real stepflow-server 0.9.0 runs the demo flows against our pod and gets demo.md's outputs.

stepflow-server binds every interface, so the whole module runs inside a network
namespace of its own (loopback only); the pod and the runtime both start in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.component_server.conftest import blob_id_of
from tests.support.netns import inside_new_netns, netns_available
from tests.support.pods import start_pod
from tests.support.runtime import remote_plugin_config
from tests.support.upstream_server import start_upstream_server

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for a network namespace")

WORKFLOWS = Path(__file__).resolve().parents[2] / "demo" / "workflows"
RUNTIME_PORT = 7840
POD_ADDRESS = "127.0.0.31"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log_dir = tmp_path_factory.mktemp("interop")
    with inside_new_netns("sfcs"):
        pod = start_pod("ours", POD_ADDRESS, log_dir, extra_args=["--metrics-port", "0"])
        try:
            server = start_upstream_server(remote_plugin_config(f"http://{POD_ADDRESS}:8080"), RUNTIME_PORT, log_dir)
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{RUNTIME_PORT}/api/v1", timeout=30) as client:
                    yield client
            finally:
                server.stop()
        finally:
            pod.stop()


def run_flow(client: httpx.Client, name: str, value: Any, **options: Any) -> dict[str, Any]:
    flow = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
    stored = client.post("/flows", json={"flow": flow})
    assert stored.status_code == 200 and stored.json()["stored"], stored.text
    run = client.post("/runs", json={"flowId": stored.json()["flowId"], "input": [value], **options})
    assert run.status_code == 200, run.text
    body = run.json()
    assert body["status"] == "completed", body
    return body["result"]["result"]


def test_runtime_lists_our_components_with_schemas(runtime: httpx.Client) -> None:
    components = {entry["component"]: entry for entry in runtime.get("/components").json()["components"]}
    assert {"/double", "/square", "/add", "/multiply", "/compute_intensive_task", "/fibonacci", "/store_and_retrieve_blob"} <= components.keys()
    assert components["/double"]["input_schema"]["$defs"]["ValueInput"]["required"] == ["value"]


def test_simple_flow(runtime: httpx.Client) -> None:
    assert run_flow(runtime, "simple-test-workflow", {"value": 3}) == {"original": 3, "doubled": 6.0, "squared": 36.0, "sum": 39.0}


def test_bidirectional_flow(runtime: httpx.Client) -> None:
    data = {"test": "value1", "number": 1, "timestamp": "1700000000"}
    assert run_flow(runtime, "bidirectional-test-workflow", {"data": data}) == {
        "blob_id": "7d84a3839fb9ebb132da775099cd051969828b40f1e8979c868f5eab026cb002",
        "retrieved_data": data,
    }


def test_parallel_bidirectional_flow(runtime: httpx.Client) -> None:
    expected = blob_id_of({"workflow_id": 1})
    output = run_flow(runtime, "parallel-bidirectional-test", {"workflow_id": 1}, maxConcurrency=3)
    assert output == {"blob_id_1": expected, "blob_id_2": expected, "blob_id_3": expected}


def test_batch_flow(runtime: httpx.Client) -> None:
    output = run_flow(runtime, "batch-workflow", {"value": 5, "iterations": 3})
    assert (output["final_result"], output["fibonacci_result"]) == (441.0, 21.0)


def test_a_component_error_fails_the_step(runtime: httpx.Client) -> None:
    flow = yaml.safe_load((WORKFLOWS / "batch-workflow.yaml").read_text())
    stored = runtime.post("/flows", json={"flow": flow}).json()
    body = runtime.post("/runs", json={"flowId": stored["flowId"], "input": [{"value": 5, "iterations": 1000}]}).json()
    assert body["status"] == "failed"
    assert "value must be at most 30" in str(body["result"]["error"])
