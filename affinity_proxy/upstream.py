"""Connections to pods: one HTTP/1.1 keep-alive connection each, pooled per pod.

The response parser (httptools) hands the head and every body piece straight to the
exchange using the connection, so an SSE event leaves for the client in the same loop
iteration it arrived in. A connection is reused only after a complete response to a
completely sent request, and never after ``pool_idle_seconds`` of idleness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
from mypy_extensions import trait

from affinity_proxy.http1 import Framing, response_head_fields, status_has_no_body
from affinity_proxy.outbox import Outbox


@trait
class ResponseSink:
    """What a connection reports to the exchange it carries. A mypyc trait, not a ``typing.Protocol``:
    compiled, a call through it is a C call, where a Protocol's is a Python method lookup
    (docs/decisions.md, "the proxy's interfaces as mypyc traits")."""

    request_done: bool

    def response_head(self, status: int, raw_head: bytes, framing: Framing, hop_by_hop: bool) -> None:
        """``raw_head``: the head's lines as the pod sent them, each ending in CRLF, without the blank line;
        ``hop_by_hop``: it has a hop-by-hop field (so it cannot be passed on as it came)."""

    def response_body(self, data: bytes) -> None: ...
    def response_complete(self) -> None: ...
    def upstream_lost(self) -> None: ...
    def upstream_writable(self, writable: bool) -> None: ...
    def hold_output(self, held: bool) -> None: ...


class UpstreamConnection:
    """An ``asyncio.Protocol`` by its methods, as ``client.ClientConnection``."""

    def __init__(self, pool: PodPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.head_only = False
        self._parser = httptools.HttpResponseParser(self)
        self._head = b""
        """The answer's head as read so far (the parser checks it; the proxy passes it on as it came)."""
        self._in_head = False
        self._interim = False
        self._until_close = False
        """The answer being read has its body delimited by the connection's close."""

    # -- driving -------------------------------------------------------------------
    def attach(self, sink: ResponseSink, head_only: bool) -> None:
        self.sink, self.head_only, self._in_head = sink, head_only, True

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.pool.outbox.write(self.transport, data)

    def pause_reading(self, paused: bool) -> None:
        if self.transport is not None and not self.closed:
            (self.transport.pause_reading if paused else self.transport.resume_reading)()

    def close(self) -> None:
        """Drop the connection (and whatever exchange it carried) for good."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.pool.outbox.flush()
            self.transport.close()
        self.closed = True

    # -- the asyncio.Protocol methods -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream connection is always handed an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        """Everything one read produces (head, body pieces, end) leaves in one write, at once."""
        sink = self.sink
        if self._in_head:
            self._head += data
        if sink is not None:
            sink.hold_output(True)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()
            self._lose()
        finally:
            if sink is not None:
                sink.hold_output(False)

    def eof_received(self) -> bool:
        self.reusable = False
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """For an answer delimited by close, the close is its end (httptools never reports it)."""
        self.closed, self.reusable = True, False
        self.pool.forget(self)
        if self._until_close and self.sink is not None:
            self._finish()
        else:
            self._lose()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(False)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(True)

    # -- httptools callbacks (only these three: no Python call per header) ------------
    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        end = self._head.find(b"\r\n\r\n")
        raw_head = self._head[: end + 2]
        self._interim = 100 <= status < 200
        if self._interim or self.sink is None:
            self._head = self._head[end + 4 :]  # what follows may hold the final answer's head
            return  # an interim answer (100 Continue: the proxy answered that itself) is dropped
        self._in_head, self._head = False, b""
        if not self._parser.should_keep_alive():
            self.reusable = False
        framing, hop_by_hop = response_head_fields(raw_head)
        if self.head_only or status_has_no_body(status):
            framing = Framing.NONE
        self._until_close = framing is Framing.CLOSE
        self.sink.response_head(status, raw_head, framing, hop_by_hop)
        if self.head_only:
            self.reusable = False  # the parser would wait for a body a HEAD answer never has
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if not self._interim:
            self._finish()

    # -- internals -----------------------------------------------------------------
    def _finish(self) -> None:
        """Back to the pool first, so a pipelined request the completion starts can take this connection."""
        sink, self.sink = self.sink, None
        if sink is not None and not sink.request_done:
            self.reusable = False  # the rest of the request body would follow the next request
        self.pool.give_back(self)
        if sink is not None:
            sink.response_complete()

    def _lose(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.upstream_lost()


class PodPool:
    """Idle keep-alive connections to one pod (most recently used first)."""

    def __init__(self, host: str, port: int, connect_timeout: float, idle_seconds: float, max_idle: int, clock: Callable[[], float], outbox: Outbox) -> None:
        """``outbox``: where the connections' writes go (the proxy's, shared by every pool and client)."""
        self.host, self.port = host, port
        self.outbox = outbox
        self._connect_timeout = connect_timeout
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle
        self._clock = clock
        self._idle: list[UpstreamConnection] = []
        self.open = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    def take_idle(self) -> UpstreamConnection | None:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._idle_seconds:
                return connection
            connection.close()
        return None

    async def connect(self) -> UpstreamConnection:
        """A new connection; OSError (ConnectionRefusedError, ...) or TimeoutError if none."""
        loop = asyncio.get_running_loop()

        def protocol() -> Any:  # an asyncio.Protocol by its methods (UpstreamConnection's docstring)
            return UpstreamConnection(self)

        async with asyncio.timeout(self._connect_timeout):
            _, connection = await loop.create_connection(protocol, self.host, self.port)
        self.open += 1
        return connection

    def give_back(self, connection: UpstreamConnection) -> None:
        if connection.reusable and not connection.closed and len(self._idle) < self._max_idle:
            connection.idle_since = self._clock()
            self._idle.append(connection)
        else:
            connection.close()

    def forget(self, connection: UpstreamConnection) -> None:
        self.open = max(0, self.open - 1)
        if connection in self._idle:
            self._idle.remove(connection)

    def prune(self) -> None:
        """Close connections idle too long, before the pod closes them under us."""
        horizon = self._clock() - self._idle_seconds
        for connection in [c for c in self._idle if c.idle_since < horizon]:
            connection.close()

    def close(self) -> None:
        for connection in list(self._idle):
            connection.close()
