"""One trace through the fleet: a run's trace id joins the runtime's, the proxy's and the
pods' log lines, and the proxy hands traceparent and tracestate to the pods unchanged."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from local_fleet.demo import WORKFLOWS
from local_fleet.trace_run import from_log_dir, lines_of_run
from tests.observability.conftest import ObservedFleet

BLOB_DATA = {"trace": "me", "n": 8}
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
LOG_POLLS = 100
"""Proxies write their log lines in batches (50 ms): look a bounded number of times."""


def poll(read: Callable[[], list[dict[str, Any]]], enough: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    found = read()
    for _ in range(LOG_POLLS):
        if enough(found):
            break
        time.sleep(0.05)
        found = read()
    return found


def header_lines(observed: ObservedFleet) -> list[dict[str, Any]]:
    return [json.loads(line) for line in observed.header_log.read_text().splitlines()]


@pytest.fixture(scope="module")
def traced_run(observed: ObservedFleet) -> dict[str, Any]:
    """A bidirectional run (an execute and two callback answers): its details, once finished."""
    flow = WORKFLOWS / "bidirectional-test-workflow.yaml"
    with observed.api() as api:
        created = api.post("/runs", json={"flow": yaml.safe_load(flow.read_text()), "input": [{"data": BLOB_DATA}]}).json()
        run = api.get(f"/runs/{created['runId']}").json()
    assert run["status"] == "completed", run
    return run


def run_lines(observed: ObservedFleet, run: dict[str, Any]) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        return [line for line in lines_of_run(from_log_dir(observed.log_dir()), run["runId"]) if line.get("trace_id") == run["traceId"]]

    return poll(read, lambda lines: sum(1 for line in lines if line.get("event") == "routing_decision") >= 3)


def test_the_trace_id_joins_runtime_proxy_and_pod_lines(observed: ObservedFleet, traced_run: dict[str, Any]) -> None:
    trace_id = traced_run["traceId"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    lines = run_lines(observed, traced_run)
    sources = {line["source"] for line in lines}
    assert "runtime" in sources and "proxy-0" in sources and any(source.startswith("pod-") for source in sources), sources

    finished = [line for line in lines if line["source"] == "runtime" and line["event"] == "run_finished"]
    assert [line["run_id"] for line in finished] == [traced_run["runId"]]

    executions = [line for line in lines if line["event"] == "execution_finished"]
    assert len(executions) == 1, executions
    execution = executions[0]
    assert execution["run_id"] == traced_run["runId"] and execution["step_id"] == "blob_test"
    assert execution["instance_id"] and SPAN_ID.match(execution["span_id"]), execution

    routed = [line for line in lines if line["source"] == "proxy-0" and line["event"] == "routing_decision"]
    assert sorted(line["decision"] for line in routed) == ["pinned", "pinned", "round_robin"], routed
    assert {line["instance_id"] for line in routed} == {execution["instance_id"]}, "the callback answers went to the pod that ran the step"


def test_pods_got_the_runtimes_trace_context_on_executes_and_callback_answers(observed: ObservedFleet, traced_run: dict[str, Any]) -> None:
    trace_id = traced_run["traceId"]
    received = [line for line in header_lines(observed) if trace_id in (line["traceparent"] or "")]
    assert len(received) == 3, received
    assert {line["tracestate"] for line in received} == {f"stepflow={traced_run['runId']}"}
    executes = [line for line in received if line["stepflow-instance-id"] is None]
    answers = [line for line in received if line["stepflow-instance-id"] is not None]
    assert len(executes) == 1 and len(answers) == 2
    assert {line["traceparent"] for line in answers} == {executes[0]["traceparent"]}, "answers belong to the step's span"
    assert {line["pod"] for line in received} == {executes[0]["pod"]}

    execution = next(line for line in run_lines(observed, traced_run) if line["event"] == "execution_finished")
    assert executes[0]["traceparent"] == f"00-{trace_id}-{execution['span_id']}-01", "the pod logs the span it was called with"


def test_the_proxy_passes_trace_headers_on_unchanged(observed: ObservedFleet) -> None:
    """A client's own context, with an unsampled flag and list-member spacing the proxy must keep."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    tracestate = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"
    body = {"jsonrpc": "2.0", "id": "trace-1", "method": "components/execute", "params": {"component": "/double", "input": {"value": 4}, "attempt": 1}}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream", "traceparent": traceparent, "tracestate": tracestate}
    answer = httpx.post(observed.topology.proxy_url(0), json=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["result"] == {"output": {"result": 8.0}}, answer.text

    received = [line for line in header_lines(observed) if line["traceparent"] and "0af7651916cd43dd8448eb211c80319c" in line["traceparent"]]
    assert [(line["traceparent"], line["tracestate"]) for line in received] == [(traceparent, tracestate)]
    pod_lines = poll(
        lambda: [e for e in from_log_dir(observed.log_dir()) if e.get("trace_id") == "0af7651916cd43dd8448eb211c80319c"], lambda found: len(found) >= 2
    )
    execution = next(line for line in pod_lines if line.get("event") == "execution_finished")
    assert execution["span_id"] == "b7ad6b7169203331" and execution["instance_id"]
