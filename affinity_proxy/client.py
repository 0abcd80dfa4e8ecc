"""The client side of the proxy: one HTTP/1.1 keep-alive connection from the runtime.

httptools parses requests; each becomes a forwarded exchange (``pipeline.Exchange``) or a
local answer (the proxy's own ``/health`` and views). Requests on one connection are answered
in order; a pipelined request waits, with reading paused, until the one before is done.
Malformed or oversized requests get a JSON answer and the connection is closed. The
connection knows what it forwards only through the narrow ``Forwarded`` interface.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

import httptools

from affinity_proxy import answers
from affinity_proxy.config import ProxyConfig
from affinity_proxy.http1 import Headers, says_http_1_1
from affinity_proxy.outbox import Outbox
from affinity_proxy.pipeline import ClientSide, Forwarded, RequestHead
from telemetry.logs import log_event

LocalAnswer = Callable[[bytes, bytes], bytes | None]
"""(method, target) -> a complete response made by the proxy, or None to forward the request."""


OpenExchange = Callable[[RequestHead, ClientSide], "Forwarded | str"]
"""The request filter: an exchange for a request to forward, or why it can never be forwarded (a 400)."""

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
logger = logging.getLogger("affinity_proxy.client")


class _Local:
    """A request the proxy answers itself; it is done as soon as its request is."""

    __slots__ = ("response", "request_done", "keep_alive")

    def __init__(self, response: bytes, keep_alive: bool) -> None:
        self.response, self.keep_alive, self.request_done = response, keep_alive, False

    def request_body(self, data: bytes) -> None:
        pass

    def request_complete(self) -> None:
        self.request_done = True


class ClientConnection(ClientSide):
    """An ``asyncio.Protocol`` by its methods, not by inheritance: the event loop calls them by name,
    and without a Python base class mypyc compiles it to a native class (docs/decisions.md)."""

    def __init__(self, config: ProxyConfig, outbox: Outbox, local_answer: LocalAnswer, open_exchange: OpenExchange | None) -> None:
        """``open_exchange`` None: a listener that answers locally only (the metrics port)."""
        self._outbox = outbox
        self._local_answer = local_answer
        self._open_exchange = open_exchange
        self._config = config
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Forwarded | _Local] = deque()
        self._parsing: Forwarded | _Local | None = None
        self._current: Forwarded | _Local | None = None
        self._url = b""
        self._headers: Headers = []
        self._head_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        """Loop time the connection went idle (no request in progress), None while busy."""
        self._reading_paused = False
        self._closing = False
        self._too_large = False
        self._held: list[bytes] | None = None
        self._between_messages = True
        self._read: bytes | None = None
        """The read being parsed while it may begin with a request; None once a request began inside it."""
        self._raw: bytes | None = None
        """The read the request being parsed began with (its head then is a prefix), or None."""

    # -- the asyncio.Protocol methods -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream connection is always handed an asyncio.Transport
        self._loop = asyncio.get_running_loop()
        self._mark_idle()

    def data_received(self, data: bytes) -> None:
        """A request starts once this read is parsed, so a head and the body that came with it leave in one write."""
        if self._closing:
            return
        self._read = data if self._between_messages else None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, "protocol upgrades are not supported by the proxy")
        except httptools.HttpParserError as exc:
            if self._too_large:
                self._reject_large_head()
            else:
                self._reject(400, f"malformed HTTP request: {exc}")
            return
        if not (self._between_messages or self._closing) and self._parsing is None and self._head_over_limit():  # a head still incomplete
            self._reject_large_head()
            return
        if self._current is None:
            self._start_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._stop_idle_timer()
        for item in [self._current, *self._queue]:
            if item is not None and not isinstance(item, _Local):
                item.client_lost()
        self._queue.clear()

    def eof_received(self) -> bool:
        """The client closed its side: the transport closes the connection (asyncio.Protocol's default)."""
        return False

    def pause_writing(self) -> None:
        if self._current is not None and not isinstance(self._current, _Local):
            self._current.client_writable(False)

    def resume_writing(self) -> None:
        if self._current is not None and not isinstance(self._current, _Local):
            self._current.client_writable(True)

    # -- used by exchanges -------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        elif self._transport is not None:
            self._outbox.write(self._transport, data)  # a transport closing by then gets nothing (Outbox.flush)

    def hold_output(self, held: bool) -> None:
        """While held, writes collect; releasing sends them as one write (one syscall, not three), at the end
        of the loop iteration (outbox.py)."""
        if held:
            self._held = self._held if self._held is not None else []
            return
        parts, self._held = self._held, None
        if parts:
            self.write(b"".join(parts))

    def pause_reading(self, paused: bool) -> None:
        if paused is not self._reading_paused and self._transport is not None and not self._transport.is_closing():
            self._reading_paused = paused
            (self._transport.pause_reading if paused else self._transport.resume_reading)()

    # -- httptools callbacks -------------------------------------------------------
    def on_message_begin(self) -> None:
        self._idle_since = None
        self._url, self._headers, self._head_bytes = b"", [], 0
        self._raw, self._read, self._between_messages = self._read, None, False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._head_bytes += len(name) + len(value)  # the limit is checked per read and when the head is complete, not per field

    def on_headers_complete(self) -> None:
        if self._head_over_limit():
            self._too_large = True
            raise ValueError("request head too large")  # ends the parse: data_received answers 431
        parser = self._parser
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        local = self._local_answer(method, self._url)
        raw = self._raw_head(method)
        if raw is not None and not says_http_1_1(raw, method, self._url):
            raw = None  # passed on as it came only when it says HTTP/1.1
        http_1_0 = raw is None and parser.get_http_version() == "1.0"
        if local is not None or self._open_exchange is None:
            # an HTTP/1.0 client's connection closes after a local answer: its head names no keep-alive
            item: Forwarded | _Local = _Local(local or self._not_here(), keep_alive and not http_1_0)
        else:
            head = RequestHead(method, self._url, self._headers, keep_alive, http_1_0, raw)
            if head.content_length > self._config.max_body_bytes:
                self._reject(413, f"request body of {head.content_length} bytes is larger than the limit of {self._config.max_body_bytes} bytes")
                return
            opened = self._open_exchange(head, self)
            if isinstance(opened, str):
                self._reject(400, opened)
                return
            item = opened
        self._parsing = item
        self._queue.append(item)
        if self._current is not None or len(self._queue) > 1:
            self.pause_reading(True)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.request_body(body)

    def on_message_complete(self) -> None:
        self._between_messages = True
        item, self._parsing = self._parsing, None
        if item is None:
            return
        item.request_complete()
        if item is self._current and isinstance(item, _Local):
            self._finished(item)

    # -- sequencing ----------------------------------------------------------------
    def _start_next(self) -> None:
        if not self._queue or self._closing:
            return
        item = self._current = self._queue.popleft()
        if isinstance(item, _Local):
            self.write(item.response)
            if item.request_done:
                self._finished(item)
            return
        if item.head.expects_continue and not item.request_done:
            self.write(CONTINUE)
        item.start(self._finished)

    def _finished(self, item: Forwarded | _Local) -> None:
        self._current = None
        if self._closing:
            return
        if not (item.keep_alive and item.request_done):
            self._close()
            return
        self.pause_reading(False)
        if self._queue:
            self._start_next()
        else:
            self._mark_idle()

    # -- helpers ---------------------------------------------------------------------
    def _raw_head(self, method: bytes) -> bytes | None:
        """The head as it came, when the request began its read and the whole head is in it (the usual request)."""
        raw, self._raw = self._raw, None
        if raw is None or not raw.startswith(method):
            return None
        end = raw.find(b"\r\n\r\n")
        return raw[: end + 2] if end >= 0 else None

    def _not_here(self) -> bytes:
        return answers.json_response(404, {"error": f"no such path {self._url.decode('latin-1')!r} on this listener"})

    def _head_over_limit(self) -> bool:
        """The head so far (target, and each field with ": " and CRLF) is over the limit."""
        return len(self._url) + self._head_bytes + 4 * len(self._headers) > self._config.max_header_bytes

    def _reject_large_head(self) -> None:
        self._reject(431, f"request head larger than {self._config.max_header_bytes} bytes")

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be forwarded, then close: what follows it cannot be trusted."""
        log_event(logger, "request_rejected", logging.WARNING, status=status, error=message, target=self._url.decode("latin-1")[:200])
        if self._current is None:
            self.write(answers.error_response(status, message, decision="rejected", retryable=False, connection=b"close"))
        self._close()

    def _close(self) -> None:
        self.hold_output(False)
        self._closing = True
        self._stop_idle_timer()
        if self._transport is not None:
            self._outbox.flush()
            self._transport.close()

    # -- idle close: one timer that re-checks, not a timer set and cancelled per request --
    def _mark_idle(self) -> None:
        assert self._loop is not None
        self._idle_since = self._loop.time()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_at(self._idle_since + self._config.client_idle_seconds, self._check_idle)

    def _check_idle(self) -> None:
        assert self._loop is not None
        self._idle_timer = None
        if self._idle_since is None or self._closing:
            return  # busy: the next _mark_idle sets a timer again
        due = self._idle_since + self._config.client_idle_seconds
        if self._loop.time() >= due:
            self._close()
        else:
            self._idle_timer = self._loop.call_at(due, self._check_idle)

    def _stop_idle_timer(self) -> None:
        self._idle_since = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
