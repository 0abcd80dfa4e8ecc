"""The remote plugin's HTTP client (remote/transport.py) against raw asyncio servers on loopback.

What the plugin relies on: a streamed answer hands over each piece as it arrives (SSE
events are never held back), a bounded ``post`` gives up with httpx.ReadTimeout, and the
same plugin works unchanged over an httpx transport (https, benchmarks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import msgspec
import pytest

from runtime_server.plugins.base import ExecuteRequest
from runtime_server.plugins.remote.settings import RemoteSettings
from runtime_server.plugins.remote.transport import HttptoolsClient, HttpxClient, make_client
from runtime_server.plugins.stepflow_http import StepflowHttpPlugin
from wire_protocol.messages import Observability

HOST, PORT = "127.0.0.186", 8081
URL = f"http://{HOST}:{PORT}/"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _serve(handler: Handler) -> asyncio.Server:
    return await asyncio.start_server(handler, HOST, PORT)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


@pytest.fixture
async def client() -> AsyncIterator[HttptoolsClient]:
    http = HttptoolsClient(connect_timeout=1.0)
    yield http
    await http.aclose()


@pytest.mark.anyio
async def test_a_streamed_answer_hands_over_each_piece_as_it_arrives(client: HttptoolsClient) -> None:
    first_piece_read = asyncio.Event()

    async def two_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nStepflow-Instance-Id: pod-a\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"9\r\ndata: 1\n\n\r\n")
        await first_piece_read.wait()  # the second event exists only once the client has the first
        writer.write(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")
        await writer.drain()

    server = await _serve(two_events)
    try:
        answer = await client.stream(URL, b"{}", {"content-type": "application/json"})
        assert (answer.status_code, answer.headers["stepflow-instance-id"]) == (200, "pod-a")
        pieces: list[bytes] = []

        async def read_all() -> None:
            async for piece in answer.aiter_raw():
                pieces.append(piece)
                first_piece_read.set()

        await asyncio.wait_for(read_all(), 3)  # a client holding the first piece back never gets the second
        await answer.aclose()
    finally:
        server.close()
    assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\n"


@pytest.mark.anyio
async def test_a_post_unanswered_within_its_timeout_is_a_read_timeout(client: HttptoolsClient) -> None:
    requests: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await _read_request(reader))
        await asyncio.sleep(5)

    server = await _serve(silent)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await asyncio.wait_for(client.post(URL, content=b'{"n":1}', timeout=0.2), 3)
    finally:
        server.close()
    assert len(requests) == 1
    assert requests[0].startswith(f"POST / HTTP/1.1\r\nhost: {HOST}:{PORT}\r\n".encode())
    assert requests[0].endswith(b'content-length: 7\r\n\r\n{"n":1}')


def test_https_and_handed_in_transports_go_through_httpx() -> None:
    assert isinstance(make_client(RemoteSettings(), "http://pods:8080"), HttptoolsClient)
    assert isinstance(make_client(RemoteSettings(), "https://pods:8443"), HttpxClient)
    assert isinstance(make_client(RemoteSettings(), "http://pods:8080", httpx.MockTransport(lambda r: httpx.Response(200))), HttpxClient)


@pytest.mark.anyio
async def test_the_plugin_works_the_same_over_an_httpx_transport() -> None:
    def pod(request: httpx.Request) -> httpx.Response:
        message = msgspec.json.decode(request.content)
        if message["method"] == "components/execute":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": message["id"], "result": {"output": {"doubled": 2 * message["params"]["input"]["value"]}}})
        return httpx.Response(202)

    plugin = StepflowHttpPlugin("mock", "http://pods:8080", RemoteSettings(), httpx.MockTransport(pod))
    await plugin.start()
    try:
        observability = Observability(run_id="run-1", flow_id="flow-1", step_id="step-1")
        request = ExecuteRequest(component="/double", input={"value": 21}, attempt=1, observability=observability, callbacks=None)  # type: ignore[arg-type]  # the demo /double never calls back, so no Callbacks are needed
        assert await plugin.execute(request) == {"doubled": 42}
    finally:
        await plugin.close()
