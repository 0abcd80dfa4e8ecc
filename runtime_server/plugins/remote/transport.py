"""The remote plugin's HTTP/1.1 client: asyncio protocols and the httptools parser.

httpx costs more CPU per call than the rest of a component call put together, even on a
fast transport (docs/benchmarks.md, "Runtime to fleet"): building its Request, URL,
Headers and Cookies objects for every call. ``HttptoolsClient`` keeps the subset of
httpx's interface the plugin uses (``post``, a streamed ``stream``, responses with
``status_code``, ``headers``, ``aiter_raw``, ``aread``, ``aclose``) and httpx's exception
classes, but writes one pre-built request head per call on a keep-alive connection (LIFO
reuse, one request per connection at a time). ``https://`` URLs, and any httpx transport
handed in (benchmarks), go through httpx itself (``HttpxClient``). ``HttptoolsTransport``
puts the same connections under an httpx client, for comparisons.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httptools
import httpx

from runtime_server.plugins.remote.settings import RemoteSettings

KEEPALIVE_SECONDS = 4.0
"""Shorter than uvicorn's 5 s idle close, so we rarely send on a connection being closed."""
MAX_IDLE_PER_HOST = 256


class Response(Protocol):
    """What the plugin reads of an answer: httpx.Response has it, and so has ``Answer``."""

    status_code: int

    @property
    def content(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def is_success(self) -> bool: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class PodClient(Protocol):
    """POSTs to component servers: ``stream`` returns once the headers are in, ``post`` once the body is."""

    async def stream(self, url: str, content: bytes, headers: Mapping[str, str]) -> Response: ...

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Response: ...

    async def aclose(self) -> None: ...


def make_client(settings: RemoteSettings, urls: str | Sequence[str], transport: httpx.AsyncBaseTransport | None = None) -> PodClient:
    """Reads are unbounded here unless a call says otherwise: the plugin bounds them itself (idle and total deadlines)."""
    if transport is None and all(url.startswith("http://") for url in ((urls,) if isinstance(urls, str) else urls)):
        return HttptoolsClient(settings.connect_timeout_seconds)
    timeout = httpx.Timeout(connect=settings.connect_timeout_seconds, read=None, write=settings.callback_timeout_seconds, pool=settings.connect_timeout_seconds)
    if transport is None:
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None, keepalive_expiry=KEEPALIVE_SECONDS))
    client = httpx.AsyncClient(transport=transport, timeout=timeout)
    for name in ("accept-encoding", "user-agent", "accept"):
        del client.headers[name]
    return HttpxClient(client)


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
        self.headers: dict[str, str] = {}
        """Names lower-cased; a repeated header keeps its last value (pods send none twice)."""
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
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

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


class Answer:
    """A response being read: status and headers (names lower-cased) now, the body as it arrives."""

    __slots__ = ("status_code", "headers", "content", "_connection", "_pool")

    def __init__(self, connection: _Connection, pool: _Pool) -> None:
        self.status_code = connection.status
        self.headers = connection.headers
        self.content = b""
        self._connection = connection
        self._pool = pool

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            for chunk in connection.take_chunks():
                yield chunk
            if connection.complete:
                return
            await connection.wait()

    async def aread(self) -> bytes:
        connection = self._connection
        if connection.complete:  # the usual case for a small answer: it came in one read with the headers
            self.content = b"".join(connection.take_chunks())
        else:
            self.content = b"".join([chunk async for chunk in self.aiter_raw()])
        return self.content

    async def aclose(self) -> None:
        self._pool.release(self._connection)


class _Target:
    """Where a URL points, and the constant start of every request head sent there."""

    __slots__ = ("host", "port", "head")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.head = f"POST {path} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode("latin-1")


class HttptoolsClient:
    def __init__(self, connect_timeout: float | None = None) -> None:
        self._connect_timeout = connect_timeout
        self._pool = _Pool()
        self._targets: dict[str, _Target] = {}

    async def stream(self, url: str, content: bytes, headers: Mapping[str, str]) -> Answer:
        target = self._targets.get(url) or self._targets.setdefault(url, _Target(url))
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        head = target.head + f"{lines}content-length: {len(content)}\r\n\r\n".encode("latin-1")
        connection = await self._pool.connection(target.host, target.port, self._connect_timeout)
        await _exchange(self._pool, connection, head, content)
        return Answer(connection, self._pool)

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Answer:
        """The whole answer; ``timeout`` bounds connecting, sending and reading it (httpx.ReadTimeout)."""
        try:
            async with asyncio.timeout(timeout):
                answer = await self.stream(url, content, headers or {})
                try:
                    await answer.aread()
                finally:
                    await answer.aclose()
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer from {url} within {timeout}s") from None
        return answer

    async def aclose(self) -> None:
        self._pool.close()


class HttpxClient:
    """The same interface on an httpx client (https, or a transport handed in)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def stream(self, url: str, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return await self._client.send(self._client.build_request("POST", url, content=content, headers=headers), stream=True)

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str] | None = None, timeout: float | None = None) -> httpx.Response:
        return await self._client.post(url, content=content, headers=headers, timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)

    async def aclose(self) -> None:
        await self._client.aclose()


class _Pool:
    """Keep-alive connections by (host, port): the most recently used idle one first."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def connection(self, host: str, port: int, connect_timeout: float | None) -> _Connection:
        # A request written to a connection that then drops is never sent again here, even when no
        # byte came back: a proxy may have passed it on before dying, so it may have run. The
        # plugin reports that as a broken connection and the engine runs the step again with the
        # next attempt number (docs/reliability.md, "proxy killed and restarted").
        return self._reusable(host, port) or await _connect(host, port, connect_timeout)

    def _reusable(self, host: str, port: int) -> _Connection | None:
        idle = self._idle.get((host, port))
        oldest_usable = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > oldest_usable:
                return connection
            connection.close()
        return None

    def release(self, connection: _Connection) -> None:
        if not connection.in_use:
            return
        connection.in_use = False
        if connection.error is not None:
            # The peer dropped a connection in the middle of a request: it probably died, and its
            # idle connections are dead too even if we have not read their end yet. Reusing them
            # would fail the engine's next attempts at once (docs/reliability.md).
            self._forget(connection.key)
        if not connection.reusable():
            connection.close()
            return
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _forget(self, key: tuple[str, int]) -> None:
        for connection in self._idle.pop(key, []):
            connection.close()

    def close(self) -> None:
        for key in list(self._idle):
            self._forget(key)


async def _connect(host: str, port: int, timeout: float | None) -> _Connection:
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


async def _exchange(pool: _Pool, connection: _Connection, head: bytes, body: bytes, read_timeout: float | None = None) -> None:
    """Send one request; return once the answer's headers are in (the connection goes back to ``pool``, closed, on any failure)."""
    connection.send(head, body)
    try:
        if read_timeout is None:
            while not connection.headers_done:
                await connection.wait()
            return
        async with asyncio.timeout(read_timeout):
            while not connection.headers_done:
                await connection.wait()
    except TimeoutError:
        pool.release(connection)
        raise httpx.ReadTimeout("no response headers within the read timeout") from None
    except BaseException:
        pool.release(connection)
        raise


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._answer.aiter_raw()

    async def aclose(self) -> None:
        await self._answer.aclose()


class HttptoolsTransport(httpx.AsyncBaseTransport):
    """The same connections under an httpx client (what the plugin used before ``HttptoolsClient``)."""

    def __init__(self) -> None:
        self._pool = _Pool()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        body = await request.aread()
        connection = await self._pool.connection(request.url.host, request.url.port or 80, timeouts.get("connect"))
        await _exchange(self._pool, connection, _request_head(request), body, timeouts.get("read"))
        answer = Answer(connection, self._pool)
        return httpx.Response(answer.status_code, headers=connection.headers, stream=_ResponseBody(answer), extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        self._pool.close()


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"
