"""Every configurable limit (docs/limits.md), set small and then exceeded, on real processes.

The runtime on 127.0.0.150:8080 has a ``limits`` section; the demo pod on 127.0.0.151
takes small ``--max-body-bytes`` and ``--max-callbacks-per-execution``; the proxy on
127.0.0.150:8081 gets its limits from the environment; a scripted pod on 127.0.0.152
(in this process) answers ``/silent`` with a stream that never ends, so runs stay in
flight. Each test shows the limit holds at its value and the error names it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime_server.config import ApiLimits, ConfigError, settings_from_data
from tests.e2e.scripted_pod import ScriptedPod
from tests.reliability.bad_requests import nested
from tests.reliability.raw_exchange import Answer, exchange
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess
from tests.support.runtime import start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_dns, start_proxy

HUB = "127.0.0.150"
POD = "127.0.0.151"
SCRIPTED = "127.0.0.152"
PROXY_PORT = 8081
DNS_LISTEN = f"{HUB}:8053"
SERVICE = "limits.fleet.test"
POD_MAX_BODY = 2048
PROXY_MAX_HEADER, PROXY_MAX_BODY = 2048, 4096
CONFIG = f"""
plugins:
  builtin: {{type: builtin}}
  pod: {{type: stepflow, url: "http://{POD}:{POD_PORT}"}}
  scripted: {{type: stepflow, url: "http://{SCRIPTED}:{POD_PORT}", idleTimeoutSeconds: 30, totalTimeoutSeconds: 60}}
routes:
  "/pod/{{*component}}": [{{plugin: pod}}]
  "/scripted/{{*component}}": [{{plugin: scripted}}]
  "/{{*component}}": [{{plugin: builtin}}]
limits: {{maxRequestBytes: 4096, maxNestingDepth: 8, maxFlowSteps: 5, maxFlowValues: 200, maxFlowTextBytes: 1000, maxConcurrentRuns: 2}}
"""
ECHO = {"steps": [], "output": {"$input": "$"}}
SILENT = {"steps": [{"id": "wait", "component": "/scripted/silent", "input": {}}], "output": {"$step": "wait"}}
RPC_HEADERS = b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
INITIALIZE = b'{"jsonrpc":"2.0","id":"i1","method":"initialize","params":{"runtime_protocol_version":1}}'


@dataclass
class LimitsFleet:
    api: httpx.Client
    processes: dict[str, ManagedProcess]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitsFleet]:
    log_dir: Path = tmp_path_factory.mktemp("limits")
    processes: dict[str, ManagedProcess] = {}
    scripted = ScriptedPod(SCRIPTED, POD_PORT).start()
    try:
        processes["pod"] = start_pod("ours", POD, log_dir, ["--metrics-port", "0", "--max-body-bytes", str(POD_MAX_BODY), "--max-callbacks-per-execution", "1"])
        processes["dns"], _ = start_dns(log_dir, DNS_LISTEN, {SERVICE: [POD]})
        with pytest.MonkeyPatch.context() as environment:  # the proxy's limits as a deployment sets them
            environment.setenv("MAX_HEADER_BYTES", str(PROXY_MAX_HEADER))
            environment.setenv("MAX_BODY_BYTES", str(PROXY_MAX_BODY))
            processes["proxy"] = start_proxy(f"{HUB}:{PROXY_PORT}", f"{SERVICE}:{POD_PORT}", DNS_LISTEN, log_dir)
        processes["runtime"], base = start_runtime_with_text(CONFIG, HUB, log_dir, port=8080)
        wait_plugins_healthy(base, processes["runtime"])
        with httpx.Client(base_url=base, timeout=20) as api:
            yield LimitsFleet(api, processes)
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
        scripted.stop()


def assert_limit_error(response: httpx.Response | Answer, status: int, limit: str) -> str:
    """The status, a JSON body, and a message that names the limit; returns the message."""
    status_code = response.status_code if isinstance(response, httpx.Response) else response.status
    body = response.json()
    assert status_code == status, body
    assert response.headers["content-type"].startswith("application/json")
    message = body["message"] if "message" in body else body["error"]["message"]
    assert limit in message, message
    return message


def logged(process: ManagedProcess, event: str, fragment: str, seconds: float = 5.0) -> bool:
    """Whether the process writes a JSON log line for ``event`` containing ``fragment`` within
    ``seconds`` (the proxy writes its lines in batches)."""
    deadline = time.monotonic() + seconds
    while not any(f'"event":"{event}"' in line and fragment in line for line in process.log(200_000).splitlines()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _steps(count: int) -> dict[str, Any]:
    return {"steps": [{"id": f"s{index}", "component": "/put_blob", "input": {"data": index, "blob_type": "data"}} for index in range(count)]}


def _aliased_yaml(levels: int) -> str:
    """Anchors five wide: level n expands to 5^(n+1) values."""
    lines = ["a0: &a0 [x, x, x, x, x]"] + [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, levels)]
    return "\n".join([*lines, "steps: []"]) + "\n"


def test_request_body_over_max_request_bytes_is_413(fleet: LimitsFleet) -> None:
    def run_with_padding(size: int) -> httpx.Response:
        return fleet.api.post("/runs", json={"flow": ECHO, "input": [{"pad": "p" * size}]})

    assert run_with_padding(3500).json()["status"] == "completed"
    assert_limit_error(run_with_padding(5000), 413, "limits.maxRequestBytes")
    assert logged(fleet.processes["runtime"], "limit_exceeded", '"limit":"maxRequestBytes"')


def test_nesting_past_max_nesting_depth_is_400(fleet: LimitsFleet) -> None:
    """The body is an object holding the input list: 2 levels, then the item's own."""
    assert fleet.api.post("/runs", json={"flow": ECHO, "input": [nested(6)]}).json()["result"]["result"] == nested(6)
    assert_limit_error(fleet.api.post("/runs", json={"flow": ECHO, "input": [nested(7)]}), 400, "limits.maxNestingDepth")


def test_flow_with_more_steps_than_max_flow_steps_is_413(fleet: LimitsFleet) -> None:
    assert fleet.api.post("/flows", json={"flow": _steps(5)}).json()["stored"] is True
    message = assert_limit_error(fleet.api.post("/flows", json={"flow": _steps(6)}), 413, "limits.maxFlowSteps")
    assert "6 steps" in message


def test_yaml_expanding_past_max_flow_values_is_413(fleet: LimitsFleet) -> None:
    assert fleet.api.post("/flows", json={"flow": _aliased_yaml(2)}).json()["stored"] is True  # 36 values
    assert_limit_error(fleet.api.post("/flows", json={"flow": _aliased_yaml(4)}), 413, "limits.maxFlowValues")  # 780 values


def test_flow_text_longer_than_max_flow_text_bytes_is_413(fleet: LimitsFleet) -> None:
    flow = "steps: []\noutput: {$input: $}\n"
    assert fleet.api.post("/runs", json={"flow": flow + "# pad\n" * 100, "input": [1]}).json()["result"]["result"] == 1
    assert_limit_error(fleet.api.post("/runs", json={"flow": flow + "# pad\n" * 200, "input": [1]}), 413, "limits.maxFlowTextBytes")


def test_runs_past_max_concurrent_runs_get_429_and_nothing_is_created(fleet: LimitsFleet) -> None:
    api = fleet.api
    before = len(api.get("/runs", params={"limit": 10_000}).json()["runs"])
    started = [api.post("/runs", json={"flow": SILENT, "input": [{}], "wait": False}) for _ in range(2)]
    assert [response.status_code for response in started] == [202, 202]
    try:
        refused = api.post("/runs", json={"flow": SILENT, "input": [{}], "wait": False})
        assert_limit_error(refused, 429, "limits.maxConcurrentRuns")
        assert refused.headers["retry-after"] == "1"
        assert len(api.get("/runs", params={"limit": 10_000}).json()["runs"]) == before + 2
        assert api.post(f"/runs/{started[0].json()['runId']}/cancel").status_code == 200
        started.append(api.post("/runs", json={"flow": SILENT, "input": [{}], "wait": False}))
        assert started[-1].status_code == 202, "a finished run frees its place"
    finally:
        for response in started[1:]:
            api.post(f"/runs/{response.json()['runId']}/cancel")


def test_callbacks_past_the_pod_limit_fail_the_component_naming_it(fleet: LimitsFleet) -> None:
    """store_and_retrieve_blob makes two callbacks; the pod allows one per execution."""
    flow = {"steps": [{"id": "blob", "component": "/pod/store_and_retrieve_blob", "input": {"data": {"$input": "$"}}}], "output": {"$step": "blob"}}
    answer = fleet.api.post("/runs", json={"flow": flow, "input": [{"k": 1}]}).json()
    assert answer["status"] == "failed"
    error = json.dumps(answer["result"]["error"])
    assert "blobs/get refused" in error and "already made 1 callbacks" in error and "MAX_CALLBACKS_PER_EXECUTION" in error, error


def test_pod_body_over_max_body_bytes_is_413(fleet: LimitsFleet) -> None:
    def post(body_frame: bytes) -> Answer:
        return exchange(POD, POD_PORT, b"POST / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n" + RPC_HEADERS + body_frame)

    def chunked(body: bytes) -> bytes:
        return b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"

    assert post(chunked(INITIALIZE)).status == 200
    padded = INITIALIZE[:-1] + b',"pad":"' + b"p" * POD_MAX_BODY + b'"}'
    assert_limit_error(post(chunked(padded)), 413, "--max-body-bytes")
    assert_limit_error(post(b"Content-Length: %d\r\n\r\n" % len(padded) + padded), 413, "MAX_BODY_BYTES")
    assert logged(fleet.processes["pod"], "request_rejected", '"status":413')


def test_proxy_header_and_body_limits_from_the_environment(fleet: LimitsFleet) -> None:
    def post(extra_headers: bytes, body: bytes) -> Answer:
        head = b"POST / HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n" + RPC_HEADERS + extra_headers
        return exchange(HUB, PROXY_PORT, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    assert post(b"", INITIALIZE).status == 200
    assert_limit_error(post(b"X-Padding: " + b"h" * PROXY_MAX_HEADER + b"\r\n", INITIALIZE), 431, f"larger than {PROXY_MAX_HEADER} bytes")
    assert_limit_error(post(b"", b"x" * (PROXY_MAX_BODY + 1)), 413, f"limit of {PROXY_MAX_BODY} bytes")
    assert logged(fleet.processes["proxy"], "request_rejected", '"status":431') and logged(fleet.processes["proxy"], "request_rejected", '"status":413')


def test_runtime_limits_config() -> None:
    assert settings_from_data({"plugins": {"b": {"type": "builtin"}}, "routes": {}}, Path.cwd()).limits == ApiLimits()
    configured = settings_from_data({"plugins": {"b": {"type": "builtin"}}, "routes": {}, "limits": {"maxConcurrentRuns": 5}}, Path.cwd()).limits
    assert configured.max_concurrent_runs == 5 and configured.max_request_bytes == ApiLimits().max_request_bytes
    for bad, words in (
        ({"maxBodyBytes": 1}, "unknown limits maxBodyBytes"),
        ({"maxFlowSteps": 0}, "limits.maxFlowSteps must be a positive number"),
        ([1], "limits must be a mapping"),
    ):
        with pytest.raises(ConfigError, match=words):
            settings_from_data({"plugins": {"b": {"type": "builtin"}}, "routes": {}, "limits": bad}, Path.cwd())
