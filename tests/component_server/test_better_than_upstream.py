"""Where our pod improves on stepflow-py 0.9.2, each shown on a real pod.

Upstream waits forever for a lost callback answer, keeps running after its client
left, queues without bound, and stops abruptly on SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.component_server.conftest import Pod, SseExecution, start_test_pod
from tests.support.waiting import wait_until
from wire_protocol import jsonrpc


@pytest.fixture
def short_callback_pod(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.32", log_dir, env={"CALLBACK_TIMEOUT_SECONDS": "0.5"})
    yield pod
    pod.process.stop()


def test_an_unanswered_callback_fails_the_component_after_the_timeout(short_callback_pod: Pod) -> None:
    execution = SseExecution.start(short_callback_pod, {"data": {"k": 1}})
    try:
        put = execution.next_message()
        final = execution.next_message()
    finally:
        execution.close()
    assert final["id"] == "sse-1" and final["error"]["code"] == jsonrpc.EXECUTION_ERROR
    assert "blobs/put got no answer from the runtime within 0.5s" in final["error"]["message"]
    late = execution.answer(put)
    assert late.status_code == 404 and "no pending request" in late.json()["error"]["message"]
    assert short_callback_pod.metric("component_executions_total", component="/store_and_retrieve_blob", outcome="error") == 1


@pytest.fixture
def pod_33(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.33", log_dir)
    yield pod
    pod.process.stop()


def test_a_client_that_drops_the_stream_cancels_the_execution(pod_33: Pod) -> None:
    execution = SseExecution.start(pod_33, {"data": {"k": 1}})
    put = execution.next_message()
    assert pod_33.metric("component_executions_in_flight") == 1
    execution.close()
    wait_until(
        lambda: pod_33.metric("component_executions_total", component="/store_and_retrieve_blob", outcome="cancelled") == 1,
        "the execution was never counted as cancelled",
        5.0,
    )
    assert pod_33.metric("component_executions_in_flight") == 0
    assert execution.answer(put).status_code == 404  # the cancelled execution's callback is forgotten
    assert "the client closed the stream" in pod_33.process.log()


@pytest.fixture
def small_pod(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.34", log_dir, args=["--max-concurrency", "2"])
    yield pod
    pod.process.stop()


def test_a_full_pod_answers_a_retriable_503(small_pod: Pod) -> None:
    held = [SseExecution.start(small_pod, {"data": {"n": n}}, f"held-{n}") for n in range(2)]
    try:
        puts = [execution.next_message() for execution in held]
        refused = small_pod.execute("/double", {"value": 1}, "third")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        body = refused.json()
        assert body["id"] == "third" and body["error"]["code"] == jsonrpc.SERVER_ERROR
        assert body["error"]["data"] == {"reason": "full", "retriable": True}
        assert "at its concurrency limit (2 executions in flight)" in body["error"]["message"]
        assert small_pod.metric("component_rejections_total", reason="full") == 1
        assert held[0].answer(puts[0]).status_code == 202
        assert held[0].run_to_end()["result"]["output"]["retrieved_data"] == {"n": 0}
        assert small_pod.execute("/double", {"value": 1}).json()["result"]["output"] == {"result": 2.0}
    finally:
        for execution in held:
            execution.close()


@pytest.fixture
def draining_pod(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.35", log_dir, env={"DRAIN_GRACE_SECONDS": "10"})
    yield pod
    pod.process.stop()


def test_sigterm_drains_refuses_new_work_and_lets_in_flight_finish(draining_pod: Pod) -> None:
    execution = SseExecution.start(draining_pod, {"data": {"k": "v"}})
    try:
        put = execution.next_message()
        draining_pod.process.signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(draining_pod.url + "/health").status_code == 503, "/health never answered 503 while draining", 5.0)
        health = httpx.get(draining_pod.url + "/health").json()
        assert (health["status"], health["inFlight"]) == ("draining", 1)
        refused = draining_pod.execute("/double", {"value": 1}, "late")
        assert refused.status_code == 503 and refused.json()["error"]["data"] == {"reason": "draining", "retriable": True}
        assert "is shutting down and takes no new executions" in refused.json()["error"]["message"]
        assert draining_pod.metric("component_server_draining") == 1
        assert draining_pod.metric("component_rejections_total", reason="draining") == 1
        assert execution.answer(put).status_code == 202  # callback answers still land while draining
        final = execution.run_to_end()
    finally:
        execution.close()
    assert final["result"]["output"]["retrieved_data"] == {"k": "v"}
    assert draining_pod.process.process is not None
    assert draining_pod.process.process.wait(5) == 0


@pytest.fixture
def impatient_pod(log_dir: Path) -> Iterator[Pod]:
    pod = start_test_pod("127.0.0.36", log_dir, env={"DRAIN_GRACE_SECONDS": "0.5"})
    yield pod
    pod.process.stop()


def test_executions_still_running_when_the_grace_ends_get_a_retriable_error(impatient_pod: Pod) -> None:
    execution = SseExecution.start(impatient_pod, {"data": {"k": 1}})
    try:
        execution.next_message()
        impatient_pod.process.signal(signal.SIGTERM)
        final = execution.next_message()
    finally:
        execution.close()
    assert final["id"] == "sse-1" and final["error"]["code"] == jsonrpc.SERVER_ERROR
    assert final["error"]["data"] == {"reason": "draining", "retriable": True}
    assert "shut down before the component finished (drain grace 0.5s); retry the step" in final["error"]["message"]
    assert impatient_pod.process.process is not None and impatient_pod.process.process.wait(5) == 0
