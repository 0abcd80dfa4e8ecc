"""uvicorn's httptools protocol as our servers run it.

Two changes, both on the wire only: what a connection is sent in one loop turn leaves in
one write (``TurnWriteTransport``: uvicorn writes a response's head and body apart), a
complete response at once, and a request too malformed to parse gets a JSON answer like
every other error, where uvicorn answers ``Invalid HTTP request received.`` in text/plain.
"""

from __future__ import annotations

import asyncio
from typing import cast

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from serving.one_write import TurnWriteTransport


class ServerProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # narrowed as uvicorn's own override is
        super().connection_made(TurnWriteTransport(transport, self.loop))  # type: ignore[arg-type]  # a Transport by duck typing: it forwards what it does not override

    def on_response_complete(self) -> None:
        """A finished answer leaves now rather than at the end of the loop turn: the peer's next
        step waits for it, and its head and body are both written by this point."""
        cast(TurnWriteTransport, self.transport).flush()
        super().on_response_complete()

    def malformed_request_body(self, message: str) -> bytes:
        """The JSON body of the 400; the runtime API's error shape unless a server says otherwise."""
        return msgspec.json.encode({"code": 400, "message": message})

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when httptools cannot parse the request; the connection then closes."""
        body = self.malformed_request_body(f"malformed HTTP request: {msg}")
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join([*head, body]))
        self.transport.close()
