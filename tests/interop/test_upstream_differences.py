"""Where our runtime and upstream's stepflow-server 0.9.0 part ways when a pod fails (issues 4, 5).

Each test runs one scenario twice, once per runtime, under identical conditions: the same
config (the k8s demo's), our affinity proxy with DNS discovery, two scripted pods and the
same one-step flow whose component makes a ``blobs/put`` callback. Everything runs in a
network namespace of its own. The step always lands first on pod A (the only pod in DNS);
once A has it, A vanishes (its health probes fail, so the proxy drops it) and pod B
joins. Then A either keeps its stream open, so the runtime's callback answer meets the
proxy's 503 for a gone instance, or its connection dies mid-step.

* Undeliverable callback answer: upstream's run is still running at the bound (it waits
  forever for an answer that cannot come); ours re-runs the step on B with attempt 2.
* Pod dies mid-step: upstream fails the run (it retries nothing for remote plugins); ours
  re-runs the step on B with attempt 2 and the run succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_fleet.dns_server import write_records
from tests.e2e.scripted_pod import ScriptedPod
from tests.support.netns import inside_new_netns, netns_available
from tests.support.pods import POD_PORT
from tests.support.processes import ManagedProcess
from tests.support.runtime import remote_plugin_config, start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_dns, start_proxy
from tests.support.upstream_server import BINARY, start_upstream_server
from tests.support.waiting import wait_until

NAME = "component-server.updiff.test"
PROXY, DNS = "127.0.0.1:8080", "127.0.0.1:5353"
UPSTREAM_PORT, OUR_PORT = 7840, 7841
HANG_BOUND_SECONDS = 8.0
"""How long upstream's run is watched for an end that never comes."""
RUN_BOUND_SECONDS = 30.0
"""Upper bound for a run that does end (ours always; upstream's when its stream dies)."""
BLOB = {"a": 1}
FLOW = {
    "schema": "https://stepflow.org/schemas/v1/flow.json",
    "name": "one-callback",
    "steps": [{"id": "ask", "component": "/python/ask", "input": {"calls": [["blobs/put", {"data": BLOB, "blob_type": "data"}]]}}],
    "output": {"$step": "ask"},
}

pytestmark = pytest.mark.skipif(not netns_available() or not BINARY.exists(), reason="needs root, iproute2 and stepflow-server")


@dataclass
class Stage:
    """DNS and proxy, shared by every scenario; pods and runtimes are new each time."""

    workdir: Path
    records: Path
    addresses: Iterator[int]

    def new_pod(self) -> ScriptedPod:
        address = f"127.0.0.{next(self.addresses)}"
        return ScriptedPod(address, POD_PORT, instance_id=f"scripted-{address}").start()

    def publish(self, *pods: ScriptedPod) -> None:
        write_records(self.records, {NAME: [pod.host for pod in pods]})


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    workdir = tmp_path_factory.mktemp("upstream-differences")
    with inside_new_netns("updiff"):
        dns, records = start_dns(workdir, DNS, {NAME: []})
        processes = [dns]
        try:
            processes.append(start_proxy(PROXY, f"{NAME}:{POD_PORT}", DNS, workdir, refresh_seconds=0.2, extra_args=["--probe-failures", "1"]))
            yield Stage(workdir, records, itertools.count(11))
        finally:
            for process in reversed(processes):
                process.stop()


def member_states() -> dict[str, str]:
    return {member["instance_id"]: member["state"] for member in httpx.get(f"http://{PROXY}/proxy/membership").json()["members"]}


def wait_members(wanted: dict[ScriptedPod, str]) -> None:
    expected = {pod.instance_id: state for pod, state in wanted.items()}
    wait_until(lambda: expected.items() <= member_states().items(), f"the proxy never saw {expected}: {member_states()}")


def start_side(side: str, log_dir: Path) -> tuple[ManagedProcess, str]:
    """One runtime with the k8s demo's config, the fleet behind our proxy; its API base URL."""
    log_dir.mkdir(exist_ok=True)
    config = remote_plugin_config(f"http://{PROXY}")
    if side == "upstream":
        return start_upstream_server(config, UPSTREAM_PORT, log_dir), f"http://127.0.0.1:{UPSTREAM_PORT}/api/v1"
    runtime, api = start_runtime_with_text(config, "127.0.0.1", log_dir, OUR_PORT)
    wait_plugins_healthy(api, runtime)
    return runtime, api


def run_flow(api: str, bound: float) -> dict[str, Any] | None:
    """POST /runs as upstream's client does (stored flow, waiting); None if no answer within ``bound``."""
    flow_id = httpx.post(f"{api}/flows", json={"flow": FLOW}, timeout=10).json()["flowId"]
    try:
        return httpx.post(f"{api}/runs", json={"flowId": flow_id, "input": [{}]}, timeout=bound).json()
    except httpx.ReadTimeout:
        return None


@dataclass
class Outcome:
    answer: dict[str, Any] | None
    api: str
    vanished: ScriptedPod
    joined: ScriptedPod

    def attempts(self, pod: ScriptedPod) -> list[int]:
        return [message["params"].get("attempt") for _, message in pod.executes()]


@contextlib.contextmanager
def scenario(stage: Stage, side: str, vanish: str, bound: float) -> Iterator[Outcome]:
    """Run FLOW on ``side`` while pod A vanishes (``vanish``, see ScriptedPod) and pod B joins."""
    vanished, joined = stage.new_pod(), stage.new_pod()
    vanished.vanish = vanish
    runtime: ManagedProcess | None = None
    try:
        stage.publish(vanished)
        wait_members({vanished: "active"})
        runtime, api = start_side(side, stage.workdir / side)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(run_flow, api, bound)
            wait_until(lambda: bool(vanished.executes()), "the step never reached pod A")
            stage.publish(vanished, joined)
            wait_members({vanished: "gone", joined: "active"})
            vanished.released.set()
            yield Outcome(answer.result(), api, vanished, joined)
    finally:
        if runtime is not None:
            runtime.stop()
        vanished.stop()
        joined.stop()


def expected_output() -> dict[str, Any]:
    blob_id = hashlib.sha256(b'{"a":1}').hexdigest()
    return {"outcome": "success", "result": {"answers": [{"jsonrpc": "2.0", "id": "cb-ANY", "result": {"blob_id": blob_id}}]}}


def without_callback_ids(result: dict[str, Any]) -> dict[str, Any]:
    for answer in result["result"]["answers"]:
        answer["id"] = "cb-ANY"
    return result


def test_undeliverable_callback_answer_hangs_upstream_and_is_rerun_on_another_pod_by_ours(stage: Stage) -> None:
    with scenario(stage, "upstream", "keep_stream", HANG_BOUND_SECONDS) as upstream:
        assert upstream.answer is None, f"upstream's run ended: {upstream.answer}"
        running = httpx.get(f"{upstream.api}/runs", params={"status": "running"}, timeout=10).json()["runs"]
        assert [run["items"] for run in running] == [{"total": 1, "completed": 0, "running": 1, "failed": 0, "cancelled": 0}]
        assert not upstream.vanished.callback_answers() and not upstream.joined.executes()

    with scenario(stage, "ours", "keep_stream", RUN_BOUND_SECONDS) as ours:
        assert ours.answer is not None and ours.answer["status"] == "completed", ours.answer
        assert without_callback_ids(ours.answer["result"]) == expected_output()
        assert (ours.attempts(ours.vanished), ours.attempts(ours.joined)) == ([1], [2])


def test_pod_dying_mid_step_fails_upstreams_run_and_is_rerun_on_another_pod_by_ours(stage: Stage) -> None:
    with scenario(stage, "upstream", "reset_stream", RUN_BOUND_SECONDS) as upstream:
        assert upstream.answer is not None, "upstream's run did not end although the pod's stream died"
        assert (upstream.answer["status"], upstream.answer["result"]["outcome"]) == ("failed", "failed"), upstream.answer
        assert not upstream.joined.executes()

    with scenario(stage, "ours", "reset_stream", RUN_BOUND_SECONDS) as ours:
        assert ours.answer is not None and ours.answer["status"] == "completed", ours.answer
        assert without_callback_ids(ours.answer["result"]) == expected_output()
        assert (ours.attempts(ours.vanished), ours.attempts(ours.joined)) == ([1], [2])
