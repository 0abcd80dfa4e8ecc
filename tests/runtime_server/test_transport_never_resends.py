"""Regression (issue 7, proxy killed and restarted): the plugin's HTTP transport never sends a request twice.

A proxy killed after reading a request may already have passed it to a pod. When the
connection then drops before any answer byte, the transport used to send the request again
on a new connection as if nothing had run, so a step's side effect ran twice under the same
attempt number. Now the failure surfaces, and the engine runs the step again as attempt 2.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from runtime_server.plugins.remote.settings import RemoteSettings
from runtime_server.plugins.remote.transport import make_client

HOST, PORT = "127.0.0.100", 8095
URL = f"http://{HOST}:{PORT}/"
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return await reader.readexactly(length)


@pytest.mark.anyio
async def test_a_request_dropped_unanswered_on_a_reused_connection_is_not_sent_again() -> None:
    received: list[bytes] = []

    async def answer_first_then_die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Like a proxy: answers the first request on a connection; reads the second and dies without a byte."""
        received.append(await _read_request(reader))
        writer.write(ANSWER)
        await writer.drain()
        received.append(await _read_request(reader))
        writer.close()

    server = await asyncio.start_server(answer_first_then_die, HOST, PORT)
    client = make_client(RemoteSettings(), URL)
    try:
        assert (await client.post(URL, content=b'{"n":1}')).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="before sending a response"):
            await client.post(URL, content=b'{"n":2}')
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert received == [b'{"n":1}', b'{"n":2}']


@pytest.mark.anyio
async def test_after_a_connection_drops_mid_request_its_idle_siblings_are_not_reused() -> None:
    """A proxy killed with several keep-alive connections open: once one drops a request, the next
    request goes out on a new connection instead of failing at once on a sibling we have not seen die."""
    received: list[bytes] = []
    doomed: set[int] = set()
    opened = iter(range(1000))

    async def answer_unless_doomed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = next(opened)
        while True:
            try:
                received.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                return
            if number in doomed:
                writer.close()
                return
            writer.write(ANSWER)
            await writer.drain()

    server = await asyncio.start_server(answer_unless_doomed, HOST, PORT)
    client = make_client(RemoteSettings(), URL)
    try:
        answers = await asyncio.gather(*(client.post(URL, content=b'{"n":%d}' % n) for n in range(3)))
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        doomed.update({0, 1, 2})  # every connection open so far is dead, though none has said so yet
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(URL, content=b'{"n":3}')
        assert (await client.post(URL, content=b'{"n":4}')).status_code == 200
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert sorted(received) == [b'{"n":%d}' % n for n in range(5)]
