"""The real stepflow-server 0.9.0 drives three stepflow-py 0.9.2 pods through our proxy.

Runs in a network namespace of its own (upstream's server binds every interface), so
the addresses below are private to the test; the module fixture keeps this thread
inside the namespace while the tests run. Spread and affinity are read from the
proxy's own metrics: executions land on every pod, and every callback answer is
pinned to the pod that asked and accepted there (202), with no instance ever missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.netns import inside_new_netns, netns_available
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess
from tests.support.runtime import remote_plugin_config
from tests.support.services import start_dns, start_proxy
from tests.support.upstream_server import BINARY, start_upstream_server
from tests.support.waiting import wait_until

NAME = "component-server.stepflow-demo.svc.cluster.local"
PODS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
PROXY, METRICS, DNS, SERVER_PORT = "127.0.0.1:8080", "127.0.0.1:9090", "127.0.0.1:5353", 7840
WORKFLOWS = Path(__file__).resolve().parents[2] / "demo" / "workflows"

pytestmark = pytest.mark.skipif(not netns_available() or not BINARY.exists(), reason="needs root, iproute2 and stepflow-server")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("upstream-through-proxy")
    processes: list[ManagedProcess] = []
    with inside_new_netns("sfproxy"):
        try:
            processes.append(start_dns(workdir, DNS, {NAME: PODS})[0])
            processes += [start_pod("upstream", address, workdir) for address in PODS]
            processes.append(start_proxy(PROXY, f"{NAME}:{POD_PORT}", DNS, workdir, metrics_listen=METRICS))
            wait_until(lambda: httpx.get(f"http://{PROXY}/health").json()["members"]["active"] == len(PODS), "the proxy never saw every pod")
            processes.append(start_upstream_server(remote_plugin_config(f"http://{PROXY}"), SERVER_PORT, workdir))
            yield f"http://127.0.0.1:{SERVER_PORT}/api/v1"
        finally:
            for process in reversed(processes):
                process.stop()


def run_flow(api: str, workflow: str, inputs: list[Any], max_concurrency: int) -> dict[str, Any]:
    flow = yaml.safe_load((WORKFLOWS / workflow).read_text())
    stored = httpx.post(f"{api}/flows", json={"flow": flow}, timeout=10).json()
    run = httpx.post(f"{api}/runs", json={"flowId": stored["flowId"], "input": inputs, "maxConcurrency": max_concurrency}, timeout=60).json()
    assert run["status"] == "completed", run
    return run


def routed_requests() -> dict[tuple[str, str, str], float]:
    """affinity_proxy_requests_total by (decision, pod, status)."""
    pattern = re.compile(r'^affinity_proxy_requests_total\{decision="([^"]*)",pod="([^"]*)",status="([^"]*)"\} (\S+)$', re.M)
    return {(d, p, s): float(v) for d, p, s, v in pattern.findall(httpx.get(f"http://{METRICS}/metrics").text)}


def delta(after: dict[tuple[str, str, str], float], before: dict[tuple[str, str, str], float]) -> dict[tuple[str, str, str], float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value - before.get(key, 0.0)}


def test_parallel_bidirectional_flow_keeps_every_callback_on_its_pod(server: str) -> None:
    before = routed_requests()
    runs = [run_flow(server, "parallel-bidirectional-test.yaml", [{"workflow_id": n}], 3) for n in range(1, 4)]
    routed = delta(routed_requests(), before)
    for run in runs:
        output = run["result"]["result"]
        assert output["blob_id_1"] == output["blob_id_2"] == output["blob_id_3"]
    pinned = {key: count for key, count in routed.items() if key[0] == "pinned"}
    assert sum(pinned.values()) == 3 * 3 * 2, routed  # 3 runs x 3 steps x (put + get)
    assert {status for _, _, status in pinned} == {"202"}, routed
    assert not any(decision in ("instance_gone", "no_backends") for decision, _, _ in routed), routed
    assert {pod for decision, pod, _ in routed if decision == "round_robin"} == set(PODS)


def test_batch_of_twenty_spreads_over_the_pods(server: str) -> None:
    before = routed_requests()
    run = run_flow(server, "simple-test-workflow.yaml", [{"value": n} for n in range(1, 21)], 5)
    items = httpx.get(f"{server}/runs/{run['runId']}/items", timeout=10).json()["items"]
    routed = delta(routed_requests(), before)
    assert [item["result"]["result"]["sum"] for item in items] == [float(n + (2 * n) ** 2) for n in range(1, 21)]
    per_pod = {pod: count for (decision, pod, status), count in routed.items() if decision in ("round_robin", "retry") and status == "200"}
    assert sum(per_pod.values()) == 60 and set(per_pod) == set(PODS), routed
    assert min(per_pod.values()) >= 10, per_pod
