"""A pod that answers in microseconds, so a proxy in front of it is the bottleneck.

    python bench/fast_pod.py HOST:PORT INSTANCE_ID

A minimal HTTP/1.1 responder on uvloop: ``GET /health`` says healthy with the instance
id (as our pods do, then closes), every other request gets one fixed JSON-RPC result in
one write, keep-alive, pipelining honoured. Bodies are framed by Content-Length only
(what wrk and the proxy send it); a chunked request is answered 501 and the connection closed.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

ANSWER_BODY = b'{"jsonrpc":"2.0","id":"bench","result":{"outcome":"success","result":{"value":6}}}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(ANSWER_BODY), ANSWER_BODY)
NOT_CHUNKED = b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def health_answer(instance_id: str) -> bytes:
    body = b'{"status":"healthy","instanceId":"%s"}' % instance_id.encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)


class _Connection(asyncio.Protocol):
    def __init__(self, health: bytes) -> None:
        self._health = health
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Answers every complete request in the buffer, all in one write."""
        buffer = self._buffer + data if self._buffer else data
        out = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            if b"\r\ntransfer-encoding:" in head:
                out.append(NOT_CHUNKED)
                close = True
                break
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            if head.startswith(b"get /health "):
                out.append(self._health)
                close = True
                break
            out.append(ANSWER)
        self._buffer = buffer
        assert self._transport is not None
        if out:
            self._transport.write(b"".join(out))
        if close:
            self._transport.close()


async def _serve(host: str, port: int, instance_id: str) -> None:
    health = health_answer(instance_id)
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(health), host, port, reuse_address=True, backlog=1024)
    await server.serve_forever()


def main() -> None:
    host, _, port = sys.argv[1].rpartition(":")
    uvloop.run(_serve(host, int(port), sys.argv[2]))


if __name__ == "__main__":
    main()
