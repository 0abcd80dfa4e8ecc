"""The proxy with odd pods: unbuffered SSE, full pods, pods dying mid-stream, HTTP hygiene, limits."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.affinity_proxy.conftest import FRESH_ADDRESSES, ODD_ADDRESSES, PROXY_HOST, Fleet, start_fleet
from tests.affinity_proxy.runtime_double import execute_request
from wire_protocol import headers as wire_headers

PAUSE = 1.5


@pytest.fixture(scope="module")
def odd_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One echoing pod and one that streams an event, pauses, then a second event."""
    fleet = start_fleet("upstream", tmp_path_factory.mktemp("odd"), [], ["--max-body-bytes", "100000", "--max-header-bytes", "8192"])
    fleet.start_odd_pod(ODD_ADDRESSES[0], "echo")
    fleet.start_odd_pod(ODD_ADDRESSES[1], "slow-sse", pause=PAUSE)
    fleet.wait_until(lambda members: len([m for m in members if m["state"] == "active"]) == 2)
    yield fleet
    fleet.stop()


def pinned(instance_id: str) -> dict[str, str]:
    return {**wire_headers.REQUEST_HEADERS, wire_headers.INSTANCE_ID: instance_id}


def test_sse_events_pass_through_one_by_one(odd_fleet: Fleet) -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{odd_fleet.proxy_url}/", content=b"{}", headers=pinned(f"slow-sse-{ODD_ADDRESSES[1]}"), timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers[wire_headers.INSTANCE_ID] == f"slow-sse-{ODD_ADDRESSES[1]}"
        for chunk in response.iter_raw():
            arrivals.append(time.monotonic() - started)
            assert chunk in (b'data: {"event":1}\n\n', b'data: {"event":2}\n\n')
    assert len(arrivals) == 2
    assert arrivals[0] < PAUSE / 2, "the first event waited for the rest of the stream"
    assert arrivals[1] >= PAUSE


def test_hop_by_hop_headers_stop_at_the_proxy_and_trace_headers_pass(odd_fleet: Fleet) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = {
        **pinned(f"echo-{ODD_ADDRESSES[0]}"),
        "traceparent": traceparent,
        "tracestate": "vendor=opaque",
        "connection": "keep-alive, x-private",
        "x-private": "secret",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic abc",
        "te": "trailers",
        "x-end-to-end": "kept",
    }
    response = httpx.post(f"{odd_fleet.proxy_url}/", content=b'{"a":1}', headers=headers)
    seen = dict(response.json()["headers"])
    for hop in ("x-private", "keep-alive", "proxy-authorization", "te"):
        assert hop not in seen
    assert seen.get("connection") in (None, "keep-alive")  # only what the proxy itself chose for its hop
    assert seen["traceparent"] == traceparent and seen["tracestate"] == "vendor=opaque" and seen["x-end-to-end"] == "kept"
    assert response.json()["body"] == '{"a":1}'
    assert "x-pod-private" not in response.headers and response.headers[wire_headers.INSTANCE_ID] == f"echo-{ODD_ADDRESSES[0]}"


def test_chunked_request_bodies_reach_the_pod_whole(odd_fleet: Fleet) -> None:
    pieces = [b'{"part":', b'"one",', b'"two":2}']
    response = httpx.post(f"{odd_fleet.proxy_url}/", content=iter(pieces), headers=pinned(f"echo-{ODD_ADDRESSES[0]}"))
    assert response.status_code == 200
    assert response.json()["body"] == b"".join(pieces).decode()


def test_keep_alive_connection_carries_many_requests(odd_fleet: Fleet) -> None:
    with socket.create_connection((PROXY_HOST, int(odd_fleet.proxy_url.rsplit(":", 1)[1]))) as sock:
        request = (
            b"POST / HTTP/1.1\r\nhost: proxy\r\ncontent-type: application/json\r\nstepflow-instance-id: echo-%s\r\ncontent-length: 2\r\n\r\n{}"
            % ODD_ADDRESSES[0].encode()
        )
        sock.sendall(request * 3)  # pipelined: answered in order, one after the other
        received = b""
        deadline = time.monotonic() + 5
        while received.count(b"HTTP/1.1 200") < 3 and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.count(b"HTTP/1.1 200 OK") == 3


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"POST / HTTP/1.1\r\nhost: p\r\ncontent-length: 200000\r\n\r\n", 413, "larger than the limit"),
        (b"POST / HTTP/1.1\r\nhost: p\r\nx-big: " + b"a" * 10000 + b"\r\n\r\n", 431, "request head larger"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_connection_closes(odd_fleet: Fleet, raw: bytes, status: int, words: str) -> None:
    with socket.create_connection((PROXY_HOST, int(odd_fleet.proxy_url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status)
    assert b"content-type: application/json" in head
    assert words in httpx.Response(status, content=body).json()["error"]["message"]


def test_chunked_body_over_the_limit_gets_413(odd_fleet: Fleet) -> None:
    response = httpx.post(f"{odd_fleet.proxy_url}/", content=iter([b"x" * 60000, b"y" * 60000]), headers=pinned(f"echo-{ODD_ADDRESSES[0]}"))
    assert response.status_code == 413
    assert response.json()["error"]["data"]["decision"] == "rejected"


def test_health_membership_and_metrics(odd_fleet: Fleet) -> None:
    health = httpx.get(f"{odd_fleet.proxy_url}/health").json()
    assert health["status"] == "healthy" and health["members"]["active"] == 2
    view = httpx.get(f"{odd_fleet.metrics_url}/membership").json()["members"]
    assert {m["instance_id"] for m in view} == {f"echo-{ODD_ADDRESSES[0]}", f"slow-sse-{ODD_ADDRESSES[1]}"}
    httpx.post(f"{odd_fleet.proxy_url}/", content=b"{}", headers=pinned(f"echo-{ODD_ADDRESSES[0]}"))
    metrics = httpx.get(f"{odd_fleet.metrics_url}/metrics").text
    assert f'affinity_proxy_requests_total{{decision="pinned",pod="{ODD_ADDRESSES[0]}",status="200"}}' in metrics
    for family in (
        "affinity_proxy_in_flight",
        "affinity_proxy_pool_idle_connections",
        "affinity_proxy_discovery_refreshes_total",
        "affinity_proxy_upstream_first_byte_seconds_bucket",
        "affinity_proxy_members",
    ):
        assert family in metrics
    assert httpx.get(f"{odd_fleet.metrics_url}/nope").status_code == 404
    decisions = odd_fleet.proxy_log_lines("routing_decision")
    assert decisions and all('"instance_id"' in line and '"pod_address"' in line and '"duration_ms"' in line for line in decisions)


def test_full_pod_is_skipped_and_no_pods_gives_503(tmp_path: Path) -> None:
    """On FRESH_ADDRESSES: the module's odd pods are still up on ODD_ADDRESSES."""
    fleet = start_fleet("upstream", tmp_path, [])
    try:
        response = httpx.post(f"{fleet.proxy_url}/", content=execute_request("/double", {"value": 1}), headers=wire_headers.REQUEST_HEADERS)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["data"] == {"decision": "no_backends", "retryable": True, "instance_id": None}
        fleet.start_odd_pod(FRESH_ADDRESSES[0], "full")
        fleet.start_odd_pod(FRESH_ADDRESSES[1], "echo")
        fleet.wait_until(lambda members: len([m for m in members if m["state"] == "active"]) == 2)
        for _ in range(4):
            response = httpx.post(f"{fleet.proxy_url}/", content=b'{"x":1}', headers=wire_headers.REQUEST_HEADERS)
            assert response.status_code == 200 and response.json()["body"] == '{"x":1}'
        assert any('"outcome":"pod_full"' in line for line in fleet.proxy_log_lines("routing_decision"))
        assert any('"decision":"retry"' in line for line in fleet.proxy_log_lines("routing_decision"))
    finally:
        fleet.stop()


def test_pod_dying_mid_stream_breaks_the_client_stream_not_the_proxy(tmp_path: Path) -> None:
    fleet = start_fleet("upstream", tmp_path, [])
    try:
        fleet.start_odd_pod(FRESH_ADDRESSES[0], "die")
        fleet.wait_until(lambda members: len(members) == 1 and members[0]["state"] == "active")
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("POST", f"{fleet.proxy_url}/", content=b"{}", headers=wire_headers.REQUEST_HEADERS, timeout=5) as response:
                assert response.status_code == 200
                for _ in response.iter_raw():
                    pass
        assert httpx.get(f"{fleet.proxy_url}/health").status_code == 200
    finally:
        fleet.stop()
