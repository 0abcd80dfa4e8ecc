"""The one pooled httpx client of a remote plugin, and the transport under it.

httpx's default transport (httpcore on anyio) costs more CPU per request than the rest
of a component call put together (docs/benchmarks.md, "Runtime: HTTP client
transport"). ``HttptoolsTransport`` keeps the httpx interface the plugin is written
against but speaks plain HTTP/1.1 on asyncio protocols with the httptools parser
(uvicorn's): one request per connection at a time, idle connections reused LIFO.
https URLs keep httpx's own transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

from runtime_server.plugins.remote.settings import RemoteSettings

KEEPALIVE_SECONDS = 4.0
"""Shorter than uvicorn's 5 s idle close, so we rarely send on a connection being closed."""
MAX_IDLE_PER_HOST = 256


def make_client(settings: RemoteSettings, url: str, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """Reads are unbounded here: the plugin bounds them itself (idle and total deadlines)."""
    timeout = httpx.Timeout(connect=settings.connect_timeout_seconds, read=None, write=settings.callback_timeout_seconds, pool=settings.connect_timeout_seconds)
    if transport is None:
        transport = HttptoolsTransport() if url.startswith("http://") else httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None, keepalive_expiry=KEEPALIVE_SECONDS))
    client = httpx.AsyncClient(transport=transport, timeout=timeout)
    for name in ("accept-encoding", "user-agent", "accept"):
        del client.headers[name]
    return client


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; httptools calls the ``on_*`` methods as bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.in_use = False
        self.key: tuple[str, int] = ("", 0)
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.error: Exception | None = None
        self._chunks: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            reason = "before sending a response" if not self.headers_done else "in the middle of the response"
            self._fail(httpx.RemoteProtocolError(f"server disconnected {reason}") if exc is None else httpx.ReadError(f"connection lost: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()  # only meaningful before the message completes
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # used by the transport
    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.in_use = True
        self._reset()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)

    async def wait(self) -> None:
        """Until something new arrives (headers, body, the end, or an error)."""
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.error is not None:
            raise self.error

    def take_chunks(self) -> list[bytes]:
        chunks, self._chunks = self._chunks, []
        return chunks

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.keep_alive

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _fail(self, error: Exception) -> None:
        self.error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, connection: _Connection, release: Any) -> None:
        self._connection = connection
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            for chunk in connection.take_chunks():
                yield chunk
            if connection.complete:
                return
            await connection.wait()

    async def aclose(self) -> None:
        self._release(self._connection)


class HttptoolsTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        host = request.url.host
        port = request.url.port or 80
        head = _request_head(request)
        # A request written to a connection that then drops is never sent again here, even when no
        # byte came back: a proxy may have passed it on before dying, so it may have run. The
        # plugin reports that as a broken connection and the engine runs the step again with the
        # next attempt number (docs/reliability.md, "proxy killed and restarted").
        connection = self._reusable(host, port) or await self._connect(host, port, timeouts.get("connect"))
        return await self._exchange(connection, head, body, timeouts)

    async def _exchange(self, connection: _Connection, head: bytes, body: bytes, timeouts: dict[str, Any]) -> httpx.Response:
        connection.send(head, body)
        try:
            async with asyncio.timeout(timeouts.get("read")):
                while not connection.headers_done:
                    await connection.wait()
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("no response headers within the read timeout") from None
        except BaseException:
            connection.close()
            raise
        return httpx.Response(connection.status, headers=connection.headers, stream=_ResponseBody(connection, self._release), extensions={"http_version": b"HTTP/1.1"})

    async def _connect(self, host: str, port: int, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took longer than {timeout}s") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        connection.key = (host, port)
        return connection

    def _reusable(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port))
        oldest_usable = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > oldest_usable:
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        if not connection.in_use:
            return
        connection.in_use = False
        if not connection.reusable():
            connection.close()
            return
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"
