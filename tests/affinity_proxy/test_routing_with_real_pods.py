"""The proxy in front of real pods: spread, pinning under concurrency, membership changes."""

from __future__ import annotations

import collections
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.affinity_proxy.conftest import FRESH_ADDRESSES, POD_ADDRESSES, REFRESH_SECONDS, Fleet
from tests.affinity_proxy.runtime_double import blob_id, execute_request, run_component
from wire_protocol import headers as wire_headers

BLOB = "/store_and_retrieve_blob"


def test_new_requests_spread_evenly_over_pods(fleet: Fleet) -> None:
    runs = [run_component(fleet.proxy_url, BLOB, {"data": {"n": n}}) for n in range(12)]
    per_pod = collections.Counter(run.instance_id for run in runs)
    assert len(per_pod) == 3 and set(per_pod.values()) == {4}, per_pod
    assert all(run.final and run.final["result"]["output"]["blob_id"] == blob_id({"n": n}) for n, run in enumerate(runs))


def test_pinned_callbacks_reach_their_pod_under_concurrency(fleet: Fleet) -> None:
    with ThreadPoolExecutor(24) as pool:
        runs = list(pool.map(lambda n: run_component(fleet.proxy_url, BLOB, {"data": {"n": n}}), range(48)))
    assert all(run.callback_statuses == [202, 202] for run in runs), [run.callback_statuses for run in runs]
    assert all(run.final and run.final["result"]["output"]["retrieved_data"] == {"n": n} for n, run in enumerate(runs))
    assert len({run.instance_id for run in runs}) == 3


def test_json_answers_pass_through_untouched(fleet: Fleet) -> None:
    direct = httpx.post(f"http://{POD_ADDRESSES[0]}:8080/", content=execute_request("/double", {"value": 3}, "r1"), headers=wire_headers.REQUEST_HEADERS)
    proxied = httpx.post(f"{fleet.proxy_url}/", content=execute_request("/double", {"value": 3}, "r1"), headers=wire_headers.REQUEST_HEADERS)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content


def test_unknown_instance_gets_503_naming_it_after_one_rediscovery(fleet: Fleet) -> None:
    headers = {**wire_headers.REQUEST_HEADERS, wire_headers.INSTANCE_ID: "no-such-pod-1234"}
    started = time.monotonic()
    response = httpx.post(f"{fleet.proxy_url}/", content=b'{"jsonrpc":"2.0","id":"c1","result":{}}', headers=headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert "no-such-pod-1234" in error["message"]
    assert error["data"] == {"decision": "instance_gone", "retryable": False, "instance_id": "no-such-pod-1234"}
    assert time.monotonic() - started < 3


def test_scale_up_is_seen_within_one_refresh(fresh_fleet: Fleet) -> None:
    fresh_fleet.start_pod(FRESH_ADDRESSES[3])
    added = time.monotonic()
    fresh_fleet.wait_until(lambda members: FRESH_ADDRESSES[3] in {m["address"] for m in members if m["state"] == "active"}, timeout=5)
    assert time.monotonic() - added < REFRESH_SECONDS + 1.0
    runs = [run_component(fresh_fleet.proxy_url, BLOB, {"data": {"n": n}}) for n in range(8)]
    assert len({run.instance_id for run in runs}) == 4


def test_killed_pod_gets_no_new_requests_and_its_pinned_requests_get_503(fresh_fleet: Fleet) -> None:
    victim = fresh_fleet.member(FRESH_ADDRESSES[0])["instance_id"]
    fresh_fleet.pods[FRESH_ADDRESSES[0]].signal(signal.SIGKILL)
    time.sleep(0.2)
    runs = [run_component(fresh_fleet.proxy_url, BLOB, {"data": {"n": n}}) for n in range(6)]  # at once, before any refresh
    assert victim not in {run.instance_id for run in runs}
    assert all(run.final and "result" in run.final for run in runs)
    headers = {**wire_headers.REQUEST_HEADERS, wire_headers.INSTANCE_ID: victim}
    response = httpx.post(f"{fresh_fleet.proxy_url}/", content=b'{"jsonrpc":"2.0","id":"c1","result":{}}', headers=headers)
    assert response.status_code == 503 and "retry-after" in response.headers
    assert victim in response.json()["error"]["message"]
    assert fresh_fleet.wait_until(lambda members: {m["instance_id"]: m["state"] for m in members}.get(victim) == "gone")


def test_pod_leaving_dns_keeps_its_pinned_callbacks_until_its_stream_ends(fresh_fleet: Fleet) -> None:
    leaving = FRESH_ADDRESSES[0]
    leaving_id = fresh_fleet.member(leaving)["instance_id"]
    drained = threading.Event()

    def leave_dns_at_first_callback(run) -> None:  # run: a ComponentRun
        if run.instance_id == leaving_id and not drained.is_set():
            fresh_fleet.set_dns([a for a in fresh_fleet.dns if a != leaving])
            fresh_fleet.wait_until(lambda members: {m["instance_id"]: m["state"] for m in members}.get(leaving_id) == "draining", timeout=5)
            others = [run_component(fresh_fleet.proxy_url, "/double", {"value": 1}) for _ in range(4)]
            assert all(other.final and "result" in other.final for other in others)
            drained.set()

    runs = []
    for n in range(3):  # round robin: one of these lands on the leaving pod
        runs.append(run_component(fresh_fleet.proxy_url, BLOB, {"data": {"n": n}}, before_callback=leave_dns_at_first_callback))
    assert drained.is_set()
    on_leaving = [run for run in runs if run.instance_id == leaving_id]
    assert len(on_leaving) == 1 and on_leaving[0].callback_statuses == [202, 202]
    assert on_leaving[0].final and on_leaving[0].final["result"]["output"]["retrieved_data"] == {"n": runs.index(on_leaving[0])}
    later = [run_component(fresh_fleet.proxy_url, BLOB, {"data": {"n": n}}) for n in range(4)]
    assert leaving_id not in {run.instance_id for run in later}
    fresh_fleet.wait_until(lambda members: {m["instance_id"]: m["state"] for m in members}.get(leaving_id, "gone") == "gone", timeout=5)
