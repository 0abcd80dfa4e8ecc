"""End to end with real parts: our runtime, our affinity proxy, a DNS server and real pods.

The four demo flows of demo.md through the CLI, on three of our pods and on three
stepflow-py 0.9.2 pods; a pod killed in the middle of bidirectional steps; a callback
answer that can never be delivered.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.fleet import DNS_LISTEN, HUB, WORKFLOWS, Fleet, submit, wait_terminal
from tests.e2e.scripted_pod import INSTANCE_ID, ScriptedPod
from tests.support.runtime import remote_plugin_config, start_runtime_with_text
from tests.support.services import start_dns

RUNS_AROUND_KILL = 240
BLOB_DATA = {"test": "value1", "number": 1, "timestamp": "1700000000"}


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server, records = start_dns(tmp_path_factory.mktemp("dns"), DNS_LISTEN)
    yield records
    server.stop()


@pytest.fixture(scope="module", params=["ours", "upstream"])
def fleet(request: pytest.FixtureRequest, dns: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    first = {"ours": 61, "upstream": 64}[request.param]
    port = {"ours": 8080, "upstream": 8081}[request.param]
    fleet = Fleet(request.param, [f"127.0.0.{first + n}" for n in range(3)], port, 7860 + port - 8080, tmp_path_factory.mktemp(request.param)).start(dns)
    yield fleet
    fleet.stop()


def result_of(completed: Any) -> Any:
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_simple_flow(fleet: Fleet) -> None:
    for value in (1, 3, 10):
        result = result_of(submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "simple-test-workflow.yaml"), "--input-json", json.dumps({"value": value})))
        doubled = 2.0 * value
        assert result == {"outcome": "success", "result": {"original": value, "doubled": doubled, "squared": doubled**2, "sum": value + doubled**2}}


def test_bidirectional_flow(fleet: Fleet) -> None:
    result = result_of(
        submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "bidirectional-test-workflow.yaml"), "--input-json", json.dumps({"data": BLOB_DATA}))
    )
    assert result["result"] == {"blob_id": "7d84a3839fb9ebb132da775099cd051969828b40f1e8979c868f5eab026cb002", "retrieved_data": BLOB_DATA}


def test_parallel_bidirectional_flow(fleet: Fleet) -> None:
    result = result_of(submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "parallel-bidirectional-test.yaml"), "--input-json", '{"workflow_id": 1}'))
    expected = hashlib.sha256(b'{"workflow_id":1}').hexdigest()
    assert result["result"] == {"blob_id_1": expected, "blob_id_2": expected, "blob_id_3": expected}


def test_batch_workflow(fleet: Fleet) -> None:
    result = result_of(submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "batch-workflow.yaml"), "--input-json", '{"value": 5, "iterations": 3}'))
    assert (result["result"]["final_result"], result["result"]["fibonacci_result"]) == (441.0, 21.0)


def test_batch_of_20_inputs_at_most_5_at_a_time(fleet: Fleet, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"value": n}) + "\n" for n in range(1, 21)))
    completed = submit(
        fleet.runtime_url, "--flow", str(WORKFLOWS / "simple-test-workflow.yaml"), "--inputs", str(inputs), "--max-concurrent", "5", "--json", "--progress"
    )
    report = result_of(completed)
    assert (report["status"], report["succeeded"], report["failed"]) == ("completed", 20, 0)
    assert [r["result"]["sum"] for r in report["results"]] == [n + (2.0 * n) ** 2 for n in range(1, 21)]
    assert "20/20 done, 0 failed" in completed.stderr


def test_failed_item_makes_the_cli_exit_non_zero(fleet: Fleet, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"value": 5, "iterations": 3}\n{"value": 5, "iterations": 1000}\n')
    completed = submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "batch-workflow.yaml"), "--inputs", str(inputs))
    assert completed.returncode == 1
    assert "succeeded 1, failed 1" in completed.stderr
    first, second = (json.loads(line) for line in completed.stdout.splitlines())
    assert first["outcome"] == "success" and second["outcome"] == "failed"


def test_no_wait_prints_the_run_id(fleet: Fleet) -> None:
    answer = result_of(submit(fleet.runtime_url, "--flow", str(WORKFLOWS / "simple-test-workflow.yaml"), "--input-json", '{"value": 2}', "--no-wait"))
    run = httpx.get(f"{fleet.runtime_url}/api/v1/runs/{answer['runId']}").json()
    assert run["runId"] == answer["runId"]


# -- failures ----------------------------------------------------------------------------


@pytest.fixture
def killable_fleet(dns: Path, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet("ours", ["127.0.0.67", "127.0.0.68", "127.0.0.69"], 8082, 7862, tmp_path).start(dns)
    yield fleet
    fleet.stop()


def test_pod_killed_during_bidirectional_steps_runs_them_again_on_another_pod(killable_fleet: Fleet) -> None:
    flow = (WORKFLOWS / "parallel-bidirectional-test.yaml").read_text()
    run_ids: list[str] = []
    with httpx.Client(base_url=killable_fleet.runtime_url, timeout=30) as client:
        for n in range(RUNS_AROUND_KILL):
            if n == RUNS_AROUND_KILL // 3:
                killable_fleet.pods["127.0.0.67"].kill()
            run_ids.append(client.post("/api/v1/runs", json={"flow": flow, "input": [{"workflow_id": n}], "wait": False}).json()["runId"])
    runs = wait_terminal(killable_fleet.runtime_url, run_ids, 60)
    failed = [httpx.get(f"{killable_fleet.runtime_url}/api/v1/runs/{run['runId']}/items").json() for run in runs if run["status"] != "completed"]
    assert len(runs) == RUNS_AROUND_KILL and not failed, json.dumps(failed[:2])
    with httpx.Client(base_url=killable_fleet.runtime_url, timeout=30) as client:
        events = [event for run_id in run_ids for event in client.get(f"/api/v1/runs/{run_id}/events").json()["events"]]
        for n, run_id in enumerate(run_ids):
            expected = hashlib.sha256(json.dumps({"workflow_id": n}, separators=(",", ":")).encode()).hexdigest()
            assert set(client.get(f"/api/v1/runs/{run_id}/items").json()["items"][0]["result"]["result"].values()) == {expected}
    retried = [event for event in events if (event.get("attempt") or 1) >= 2]
    assert retried, "no step ran a second attempt: the kill did not land in the middle of a step"
    assert {event["stepId"][:9] for event in retried} == {"blob_test"}


@pytest.fixture
def refusing_pod() -> Iterator[ScriptedPod]:
    pod = ScriptedPod("127.0.0.69", 8089).start()
    pod.refuse_answers = True
    yield pod
    pod.stop()


def test_undeliverable_callback_fails_the_step_within_its_deadline_naming_pod_and_request(refusing_pod: ScriptedPod, tmp_path: Path) -> None:
    runtime, _ = start_runtime_with_text(remote_plugin_config(refusing_pod.url, idleTimeoutSeconds=2, totalTimeoutSeconds=5), HUB, tmp_path, 7865)
    flow = {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "ask",
        "steps": [{"id": "ask", "component": "/python/ask", "input": {"calls": [["blobs/put", {"data": {"a": 1}, "blob_type": "data"}]]}}],
        "output": {"$step": "ask"},
    }
    try:
        started = time.monotonic()
        answer = httpx.post(f"http://{HUB}:7865/api/v1/runs", json={"flow": flow, "input": [{}]}, timeout=30).json()
        elapsed = time.monotonic() - started
    finally:
        runtime.stop()
    assert answer["status"] == "failed"
    assert elapsed < 5.0
    error = json.dumps(answer["result"]["error"])
    executes = [message["id"] for _, message in refusing_pod.executes()]
    assert len(executes) >= 2, "the step was not run again"
    assert INSTANCE_ID in error and "HTTP 503" in error and executes[-1] in error, error
