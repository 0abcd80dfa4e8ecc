"""The proxy's protocol objects driven in one process: exact bytes each side receives, writes per request.

Real httptools parsers, the real pipeline and pools; only the transports are fakes
(tests/affinity_proxy/in_process.py). Bytes are fed whole, one at a time and in odd
splits, as h11's and uvicorn's tests do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from affinity_proxy.client import ClientConnection
from affinity_proxy.outbox import JOIN_LIMIT
from affinity_proxy.upstream import UpstreamConnection
from tests.affinity_proxy.in_process import CONFIG, FakeTransport, Rig, feed, transport, turn

VIA = b"via: 1.1 affinity-proxy\r\n"
REQUEST = b"POST / HTTP/1.1\r\nhost: p\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
FORWARDED = b"POST / HTTP/1.1\r\nhost: p\r\ncontent-type: application/json\r\ncontent-length: 2\r\n" + VIA + b"\r\n{}"
ANSWER = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'
RELAYED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n" + VIA + b'\r\n{"a":1}'
SPLITS = ["whole", "bytes", "odd"]


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the fake transports schedule their callbacks on it)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def one_pod() -> tuple[Rig, UpstreamConnection, ClientConnection]:
    """A proxy with one pod, an idle pooled connection to it and a client connection."""
    rig = Rig()
    return rig, rig.pod_connection("pod-a"), rig.client()


def pinned(request: bytes, instance_id: bytes) -> bytes:
    return request.replace(b"host: p\r\n", b"host: p\r\nstepflow-instance-id: " + instance_id + b"\r\n", 1)


@pytest.mark.parametrize("request_split", SPLITS)
@pytest.mark.parametrize("answer_split", SPLITS)
@in_loop
async def test_a_request_and_its_answer_pass_byte_exact(request_split: str, answer_split: str) -> None:
    rig, pod, client = one_pod()
    feed(client, REQUEST, request_split)
    assert transport(pod).received == FORWARDED
    feed(pod, ANSWER, answer_split)
    assert transport(client).received == RELAYED
    if request_split == "whole":
        assert len(transport(pod).writes) == 1, "head and body leave for the pod in one write"
    if answer_split == "whole":
        assert len(transport(client).writes) == 1, "what one read from the pod yields leaves in one write"
    assert rig.member("pod-a").in_flight == 0 and not transport(client).closed


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_request_heads_keep_their_spelling_when_they_came_in_one_read(how: str) -> None:
    _, pod, client = one_pod()
    feed(client, b"GET /x HTTP/1.1\r\nHost: p\r\nX-Mixed-Case: A\r\n\r\n", how)
    expected = b"GET /x HTTP/1.1\r\nHost: p\r\nX-Mixed-Case: A\r\n" if how == "whole" else b"GET /x HTTP/1.1\r\nhost: p\r\nx-mixed-case: A\r\n"
    assert transport(pod).received == expected + VIA + b"\r\n", "as it came from one read; rebuilt (names lower-cased) from pieces"


@in_loop
async def test_keep_alive_reuses_the_pod_connection_one_write_each_way_per_request() -> None:
    _, pod, client = one_pod()
    for _ in range(3):
        feed(client, REQUEST)
        feed(pod, ANSWER)
    assert transport(pod).writes == [FORWARDED] * 3
    assert transport(client).writes == [RELAYED] * 3


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_pipelined_requests_are_answered_in_order(how: str) -> None:
    _, pod, client = one_pod()
    second = REQUEST.replace(b"POST / ", b"POST /second ")
    feed(client, REQUEST + second, how)
    assert transport(pod).take() == FORWARDED, "the second request waits until the first is answered"
    assert not transport(client).reading
    feed(pod, ANSWER)
    assert transport(pod).take() == FORWARDED.replace(b"POST / ", b"POST /second ")
    feed(pod, ANSWER.replace(b'{"a":1}', b'{"a":2}'))
    assert transport(client).received == RELAYED + RELAYED.replace(b'{"a":1}', b'{"a":2}')
    assert transport(client).reading


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_expect_100_continue_is_answered_by_the_proxy(how: str) -> None:
    _, pod, client = one_pod()
    head, _, payload = REQUEST.partition(b"\r\n\r\n")
    feed(client, head + b"\r\nexpect: 100-continue\r\n\r\n", how)
    assert transport(client).take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    feed(client, payload, how)
    assert transport(pod).received == FORWARDED, "the expectation is not passed on"
    feed(pod, ANSWER)
    assert transport(client).received == RELAYED


@in_loop
async def test_head_answers_carry_no_body_and_the_next_request_still_works() -> None:
    rig, pod, client = one_pod()
    feed(client, b"HEAD /x HTTP/1.1\r\nhost: p\r\n\r\n")
    assert transport(pod).take() == b"HEAD /x HTTP/1.1\r\nhost: p\r\n" + VIA + b"\r\n"
    feed(pod, b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n")
    assert transport(client).take() == b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n" + VIA + b"\r\n"
    assert transport(pod).closed, "a connection that answered HEAD is not reused (its parser would wait for a body)"
    await turn()
    fresh = rig.pod_connection("pod-a")
    feed(client, REQUEST)
    feed(fresh, ANSWER)
    assert transport(client).received == RELAYED


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_http_1_0_client_gets_a_chunked_answer_delimited_by_close(how: str) -> None:
    _, pod, client = one_pod()
    feed(client, b"GET /s HTTP/1.0\r\nhost: p\r\n\r\n", how)
    assert transport(pod).received == b"GET /s HTTP/1.1\r\nhost: p\r\n" + VIA + b"\r\n", "the pod hop is HTTP/1.1"
    feed(pod, b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n", how)
    assert transport(client).received == b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + VIA + b"connection: close\r\n\r\ndata: 1data: 2"
    assert transport(client).closed


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_an_http_1_0_client_that_asks_for_keep_alive_is_told_so_and_kept(how: str) -> None:
    """An HTTP/1.0 answer without ``connection: keep-alive`` means the server closes (``ab -k`` waits for that close)."""
    _, pod, client = one_pod()
    request = REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"host: p\r\n", b"host: p\r\nconnection: keep-alive\r\n")
    for _ in range(2):
        feed(client, request, how)
        assert transport(pod).take() == FORWARDED, "the pod hop is HTTP/1.1, without the client's Connection field"
        feed(pod, ANSWER, how)
        assert transport(client).take() == RELAYED.replace(VIA, b"connection: keep-alive\r\n" + VIA)
    assert not transport(client).closed


@in_loop
async def test_an_http_1_0_client_is_closed_after_the_proxys_own_answer() -> None:
    """The proxy's own answers name no keep-alive, so an HTTP/1.0 client's connection ends with them."""
    _, _, client = one_pod()
    feed(client, b"GET /health HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    await turn()
    assert transport(client).received.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection:" not in transport(client).received
    assert transport(client).closed


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_close_delimited_answer_is_rechunked_for_an_http_1_1_client(how: str) -> None:
    rig, pod, client = one_pod()
    feed(client, b"GET /s HTTP/1.1\r\nhost: p\r\n\r\n")
    feed(pod, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc", how)
    transport(pod).close()
    await turn()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in [b"abc"] if how == "whole")
    received = transport(client).received
    assert received.startswith(b"HTTP/1.1 200 OK\r\n" + VIA + b"transfer-encoding: chunked\r\n\r\n")
    assert received.endswith(b"0\r\n\r\n") and (not chunks or chunks in received)
    assert not transport(client).closed, "the client hop stays open: its body was chunked"
    assert rig.member("pod-a").in_flight == 0


@pytest.mark.parametrize("how", SPLITS)
@in_loop
async def test_chunked_bodies_both_ways(how: str) -> None:
    _, pod, client = one_pod()
    feed(client, b"POST /up HTTP/1.1\r\nhost: p\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", how)
    forwarded = transport(pod).received
    assert forwarded.startswith(b"POST /up HTTP/1.1\r\nhost: p\r\n" + VIA + b"transfer-encoding: chunked\r\n\r\n")
    assert _dechunk(forwarded.partition(b"\r\n\r\n")[2]) == b"abcde"
    feed(pod, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n", how)
    relayed = transport(client).received
    assert relayed.startswith(b"HTTP/1.1 200 OK\r\n" + VIA + b"transfer-encoding: chunked\r\n\r\n")
    assert _dechunk(relayed.partition(b"\r\n\r\n")[2]) == b"wxyz"
    assert not transport(pod).closed, "a complete exchange leaves the pod connection reusable"


@in_loop
async def test_sse_events_leave_as_they_arrive() -> None:
    _, pod, client = one_pod()
    feed(client, REQUEST)
    feed(pod, b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    assert transport(client).take().endswith(b"transfer-encoding: chunked\r\n\r\n")
    for event in [b"data: 1\n\n", b"data: 2\n\n"]:
        feed(pod, b"%x\r\n%s\r\n" % (len(event), event))
        assert transport(client).take() == b"%x\r\n%s\r\n" % (len(event), event), "each event is written in the turn it arrived in"


@in_loop
async def test_a_pod_closing_mid_answer_closes_the_client_without_the_last_chunk() -> None:
    rig, pod, client = one_pod()
    feed(client, REQUEST)
    feed(pod, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
    transport(pod).close()
    await turn()
    assert not transport(client).received.endswith(b"0\r\n\r\n")
    assert transport(client).closed and rig.member("pod-a").in_flight == 0


@in_loop
async def test_a_pod_closing_before_answering_gets_a_502() -> None:
    _, pod, client = one_pod()
    feed(client, REQUEST)
    transport(pod).close()
    await turn()
    status, error = _error(transport(client).received)
    assert status == 502 and error["data"] == {"decision": "round_robin", "retryable": False, "instance_id": "pod-a"}


@in_loop
async def test_a_client_closing_mid_request_abandons_the_pod_connection() -> None:
    rig, pod, client = one_pod()
    feed(client, REQUEST[:-1])
    assert transport(pod).received == FORWARDED[:-1]
    transport(client).close()
    await turn()
    assert transport(pod).closed, "the pod's work for a client that left is not left streaming"
    assert rig.member("pod-a").in_flight == 0


@in_loop
async def test_pinned_requests_reach_their_instance_and_draining_pods_keep_their_pins() -> None:
    rig = Rig(["pod-a", "pod-b"], draining=["pod-c"])
    pods = {name: rig.pod_connection(name) for name in ["pod-a", "pod-b", "pod-c"]}
    client = rig.client()
    for name in ["pod-b", "pod-c", "pod-b"]:
        feed(client, pinned(REQUEST, name.encode()))
        assert rig.member(name).pinned == 1 and rig.member(name).in_flight == 1
        feed(pods[name], ANSWER)
    assert [len(transport(pods[name]).writes) for name in ["pod-a", "pod-b", "pod-c"]] == [0, 2, 1]
    assert transport(client).writes == [RELAYED] * 3


@in_loop
async def test_a_gone_instance_gets_503_with_retry_after_and_is_not_sent_elsewhere() -> None:
    rig = Rig(["pod-a", "pod-b"])
    pod = rig.pod_connection("pod-a")
    rig.proxy.membership.connection_refused(rig.member("pod-b"))
    client = rig.client()
    feed(client, pinned(REQUEST, b"pod-b"))
    status, error = _error(transport(client).received)
    assert status == 503 and b"\r\nretry-after: 1\r\n" in transport(client).received
    assert error["data"] == {"decision": "instance_gone", "retryable": False, "instance_id": "pod-b"}
    assert transport(pod).received == b""


@in_loop
async def test_a_full_pod_sends_an_unpinned_request_to_the_next_one() -> None:
    rig = Rig(["pod-a", "pod-b"])
    pods = [rig.pod_connection("pod-a"), rig.pod_connection("pod-b")]
    client = rig.client()
    feed(client, REQUEST)
    first = next(pod for pod in pods if transport(pod).received)
    feed(first, b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
    second = next(pod for pod in pods if pod is not first)
    assert transport(second).received == FORWARDED, "the body is replayed to the next pod"
    feed(second, ANSWER)
    assert transport(client).received == RELAYED


@in_loop
async def test_a_full_pod_answer_reaches_a_pinned_request_unchanged() -> None:
    rig = Rig(["pod-a", "pod-b"])
    pod = rig.pod_connection("pod-b")
    client = rig.client()
    feed(client, pinned(REQUEST, b"pod-b"))
    feed(pod, b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
    assert transport(client).received == b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n" + VIA + b"\r\n"


@in_loop
async def test_the_proxy_answers_its_own_health_locally() -> None:
    rig = Rig(["pod-a", "pod-b"])
    client = rig.client()
    feed(client, b"GET /health HTTP/1.1\r\nhost: p\r\n\r\n", "bytes")
    head, _, payload = transport(client).received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(payload)["members"]["active"] == 2


@pytest.mark.parametrize("how", SPLITS)
@pytest.mark.parametrize("complete", [True, False])
@in_loop
async def test_a_head_over_the_limit_gets_431_whole_or_still_arriving(how: str, complete: bool) -> None:
    rig = Rig(config=dataclasses.replace(CONFIG, max_header_bytes=200))
    pod, client = rig.pod_connection("pod-a"), rig.client()
    head = b"GET / HTTP/1.1\r\nhost: p\r\n" + b"x-big: a\r\n" * 30 + (b"\r\n" if complete else b"")
    feed(client, head, how)
    assert _error(transport(client).received)[0] == 431 and transport(client).closed
    assert transport(pod).received == b""


@in_loop
async def test_a_head_at_the_limit_is_forwarded() -> None:
    head = b"GET / HTTP/1.1\r\nhost: p\r\n\r\n"
    rig = Rig(config=dataclasses.replace(CONFIG, max_header_bytes=len(b"/") + len(b"host: p\r\n")))
    pod, client = rig.pod_connection("pod-a"), rig.client()
    feed(client, head, "bytes")
    assert transport(pod).received.startswith(b"GET / HTTP/1.1\r\nhost: p\r\n")


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + rest[:size], rest[size + 2 :]


def _error(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload)["error"]


@in_loop
async def test_writes_leave_after_the_loop_turn_in_order_joined_per_transport_and_before_a_close() -> None:
    """The outbox (outbox.py): nothing leaves during the reads of a turn; then each transport gets its
    bytes in the order written, writes in a row to one transport as one; a close sends what came before it."""
    rig = Rig()
    outbox = rig.proxy.outbox
    first, second, third = (FakeTransport(rig.client(), outbox) for _ in range(3))
    for target, data in [(first, b"a"), (first, b"b"), (second, b"c"), (first, b"d")]:
        outbox.write(target, data)
    assert (first._writes, second._writes) == ([], []), "nothing is sent before the turn ends"
    await asyncio.sleep(0)
    assert (first._writes, second._writes) == ([b"ab", b"d"], [b"c"])
    large = b"x" * JOIN_LIMIT
    outbox.write(first, large)
    outbox.write(first, b"y")
    assert first.writes[-2:] == [large, b"y"], "a large write is not copied into a join"
    outbox.write(third, b"lost with its connection")
    third.close()
    client = rig.client()
    client.write(b"last words")
    client._close()
    assert transport(client)._writes == [b"last words"], "what was written before the proxy's close leaves before it"
    assert third._writes == [], "a transport closed under the proxy gets nothing more"
