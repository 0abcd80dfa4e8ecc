"""The bad-input corpus (bad_requests.py) against a real fleet on loopback.

DNS, two demo pods, the affinity proxy and the runtime (its stepflow plugin behind the
proxy) run as processes on this suite's addresses: the fleet on 127.0.0.140, pods on
127.0.0.141-142. Every malformed request must get its 4xx with a JSON error naming the
problem; afterwards every process still answers health, and the runs submitted before
and after the corpus are all there and completed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.fleet import wait_terminal
from tests.reliability.bad_requests import CORPUS, BadRequest
from tests.reliability.raw_exchange import Answer, encode_request, exchange
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess
from tests.support.runtime import remote_plugin_config, start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_dns, start_proxy

HUB = "127.0.0.140"
POD_ADDRESSES = ["127.0.0.141", "127.0.0.142"]
DNS_LISTEN = f"{HUB}:8053"
PROXY_PORT = 8081
RUNTIME_PORT = 8080
SERVICE = "bad-input.fleet.test"
DOUBLE_FLOW = {"name": "double", "steps": [{"id": "d", "component": "/python/double", "input": {"value": {"$input": "value"}}}], "output": {"$step": "d"}}
BLOB_FLOW = {
    "name": "blob",
    "steps": [{"id": "b", "component": "/python/store_and_retrieve_blob", "input": {"data": {"$input": "$"}}}],
    "output": {"$step": "b"},
}


@dataclass
class BadInputFleet:
    log_dir: Path
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    runs: dict[str, float] = field(default_factory=dict)
    """Run id -> the value its flow doubles (0 for the blob flow)."""

    @property
    def runtime_url(self) -> str:
        return f"http://{HUB}:{RUNTIME_PORT}"

    def address(self, target: str) -> tuple[str, int]:
        return {"runtime": (HUB, RUNTIME_PORT), "pod": (POD_ADDRESSES[0], POD_PORT), "proxy": (HUB, PROXY_PORT)}[target]

    def start(self) -> BadInputFleet:
        self.processes["dns"], _ = start_dns(self.log_dir, DNS_LISTEN, {SERVICE: POD_ADDRESSES})
        for address in POD_ADDRESSES:
            self.processes[address] = start_pod("ours", address, self.log_dir, ["--metrics-port", "0"])
        self.processes["proxy"] = start_proxy(f"{HUB}:{PROXY_PORT}", f"{SERVICE}:{POD_PORT}", DNS_LISTEN, self.log_dir)
        config = remote_plugin_config(f"http://{HUB}:{PROXY_PORT}", idleTimeoutSeconds=5, totalTimeoutSeconds=20)
        self.processes["runtime"], api = start_runtime_with_text(config, HUB, self.log_dir, RUNTIME_PORT)
        wait_plugins_healthy(api, self.processes["runtime"])
        return self

    def submit_runs(self, first_value: int) -> None:
        """Four runs that go through the proxy to the pods (two with callbacks), not waited for."""
        with httpx.Client(base_url=f"{self.runtime_url}/api/v1", timeout=10) as client:
            for value in (first_value, first_value + 1):
                answer = client.post("/runs", json={"flow": DOUBLE_FLOW, "input": [{"value": value}], "wait": False})
                self.runs[answer.json()["runId"]] = value
                answer = client.post("/runs", json={"flow": BLOB_FLOW, "input": [{"n": value}], "wait": False})
                self.runs[answer.json()["runId"]] = 0

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadInputFleet]:
    fleet = BadInputFleet(tmp_path_factory.mktemp("bad-input"))
    try:
        fleet.start().submit_runs(first_value=1)
        yield fleet
    finally:
        fleet.stop()


def send(fleet: BadInputFleet, request: BadRequest) -> Answer:
    raw = request.raw if request.raw is not None else encode_request(request.method, request.path, request.headers, request.body)
    return exchange(*fleet.address(request.target), raw)


def test_the_corpus_is_large_and_covers_every_service() -> None:
    assert len(CORPUS) >= 40
    assert {request.target for request in CORPUS} == {"runtime", "pod", "proxy"}
    assert len({(request.target, request.name) for request in CORPUS}) == len(CORPUS), "target and name identify a row: keep them unique"


@pytest.mark.parametrize("request_row", CORPUS, ids=[f"{row.target}: {row.name}" for row in CORPUS])
def test_bad_request_gets_a_clear_json_error(fleet: BadInputFleet, request_row: BadRequest) -> None:
    answer = send(fleet, request_row)
    assert answer.status == request_row.status, answer.body[:500]
    assert answer.status < 500 or request_row.why, "a 5xx for bad input needs a documented reason"
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    message = answer.error_message()
    assert request_row.fragment in message, message


def test_every_process_still_answers_and_no_run_is_lost(fleet: BadInputFleet) -> None:
    """Runs after the corpus go through; every run from before and after is retrievable and completed."""
    fleet.submit_runs(first_value=10)
    for name, process in fleet.processes.items():
        assert process.alive(), f"{name} died:\n{process.log()}"
    assert httpx.get(f"{fleet.runtime_url}/api/v1/health").status_code == 200
    assert httpx.get(f"http://{HUB}:{PROXY_PORT}/health").status_code == 200
    for address in POD_ADDRESSES:
        assert httpx.get(f"http://{address}:{POD_PORT}/health").status_code == 200
    runs = wait_terminal(fleet.runtime_url, list(fleet.runs), seconds=30)
    assert [run["status"] for run in runs] == ["completed"] * len(fleet.runs), runs
    with httpx.Client(base_url=f"{fleet.runtime_url}/api/v1") as client:
        for run_id, value in fleet.runs.items():
            result = client.get(f"/runs/{run_id}/items").json()["items"][0]["result"]
            assert result["outcome"] == "success", result
            if value:
                assert result["result"] == {"result": value * 2}
