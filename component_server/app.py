"""The pod's HTTP shell: a raw ASGI route for ``POST /`` and starlette for the rest.

``POST /`` is the hot path, so it reads headers and body straight from ASGI and decodes
with msgspec (docs/decisions.md). Executions pass admission (concurrency limit,
draining) first; context components answer over SSE, watched for a client that goes
away, which cancels the execution.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from component_server.admission import Admission, RejectReason
from component_server.callbacks import CallbackHub
from component_server.context import Context
from component_server.dispatch import ExecuteJob, Reply, bare_error, dispatch
from component_server.execution import Answer, execute
from component_server.metrics import PodMetrics
from component_server.registry import ComponentServer
from component_server.settings import Settings
from telemetry.logs import log_event
from telemetry.trace import parse_traceparent
from wire_protocol import headers, jsonrpc
from wire_protocol.sse import encode_event

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = logging.getLogger("component_server")

_JSON_TYPE = headers.JSON.encode()
_SSE_TYPE = headers.SSE.encode()
_RETRY_AFTER_SECONDS = b"1"


class RequestHeaders:
    """The four request headers the pod looks at, found in one pass."""

    __slots__ = ("content_type", "accept", "traceparent", "content_length")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.content_type = self.accept = b""
        self.traceparent: str | None = None
        self.content_length = 0
        for name, value in raw:
            if name == b"content-type":
                self.content_type = value.lower()
            elif name == b"accept":
                self.accept = value.lower()
            elif name == b"traceparent":
                self.traceparent = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                self.content_length = int(value)


class ComponentApp:
    def __init__(self, server: ComponentServer, settings: Settings, instance_id: str, metrics: PodMetrics) -> None:
        self.server = server
        self.instance_id = instance_id
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission(settings.max_concurrency)
        self.callbacks = CallbackHub(instance_id, settings.callback_timeout_seconds, metrics.callback_finished)
        self._streams: set[asyncio.Task[Answer]] = set()
        self._drained: asyncio.Event | None = None
        self._instance_header = (headers.INSTANCE_ID_LOWER.encode(), instance_id.encode())
        self._sse_headers = [
            (b"content-type", headers.SSE_WITH_CHARSET.encode()),
            self._instance_header,
            *((name.encode(), value.encode()) for name, value in headers.SSE_RESPONSE_HEADERS.items()),
        ]
        self._routes = Starlette(routes=[Route("/health", self.health)], exception_handlers={HTTPException: _http_error})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/":
            await self._post(scope, receive, send)
        else:
            await self._routes(scope, receive, send)

    async def health(self, request: Request) -> JSONResponse:
        """200 healthy, or 503 while draining so Kubernetes and the proxy stop sending work."""
        status = "draining" if self.admission.draining else "healthy"
        body = {
            "status": status,
            "instanceId": self.instance_id,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "service": "component-server",
            "inFlight": self.admission.in_flight,
        }
        return JSONResponse(body, status_code=503 if self.admission.draining else 200)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_headers = RequestHeaders(scope["headers"])
        if _JSON_TYPE not in request_headers.content_type:
            await self._send_json(send, bare_error(415, "Content-Type must be application/json"))
            return
        if _JSON_TYPE not in request_headers.accept or _SSE_TYPE not in request_headers.accept:
            await self._send_json(send, bare_error(406, "Accept header must include application/json and text/event-stream"))
            return
        limit = self.settings.max_body_bytes
        body = None if request_headers.content_length > limit else await _read_body(receive, limit)
        if body is None:
            text = f"Request body larger than the pod's limit of {limit} bytes (--max-body-bytes, env MAX_BODY_BYTES)"
            log_event(logger, "request_rejected", logging.WARNING, instance_id=self.instance_id, status=413, error=text)
            await self._send_json(send, bare_error(413, text), ((b"connection", b"close"),))
            return
        try:
            envelope = jsonrpc.decode_envelope(body)
        except jsonrpc.ProtocolError as exc:
            await self._send_json(send, bare_error(400, str(exc)))
            return
        action = dispatch(envelope, self.server, self.callbacks.answer)
        if isinstance(action, Reply):
            await self._send_json(send, action)
        else:
            await self._execute(action, request_headers.traceparent, receive, send)

    async def _execute(self, job: ExecuteJob, traceparent: str | None, receive: Receive, send: Send) -> None:
        refusal = self.admission.admit()
        if refusal is not None:
            self.metrics.rejected(refusal)
            await self._send_json(send, self._unavailable(job.request_id, refusal), ((b"retry-after", _RETRY_AFTER_SECONDS),))
            return
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        answer = Answer(b"", "error", "the pod failed before the component answered")
        try:
            if job.component.takes_context:
                answer = await self._stream(job, receive, send)
            else:
                answer = await execute(job.component, job.request_id, job.params, None)
                await self._send_json(send, Reply(200, answer.body))
        except asyncio.CancelledError:
            answer = Answer(b"", "cancelled", "the pod shut down before the component answered")
            raise
        finally:
            self._finish(job, answer, time.perf_counter() - started, traceparent)

    async def _stream(self, job: ExecuteJob, receive: Receive, send: Send) -> Answer:
        """SSE answer: callbacks as events, the response as the last event; a dropped client cancels."""
        await send({"type": "http.response.start", "status": 200, "headers": self._sse_headers})

        async def emit(message: bytes) -> None:
            await send({"type": "http.response.body", "body": encode_event(message), "more_body": True})

        context = Context(self.callbacks, emit, job.params.observability, job.params.attempt, self.settings.max_callbacks_per_execution)
        running = asyncio.create_task(execute(job.component, job.request_id, job.params, context))
        client_gone = asyncio.create_task(_disconnected(receive))
        self._streams.add(running)
        try:
            await asyncio.wait((running, client_gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._streams.discard(running)
            client_gone.cancel()
            if not running.done():
                running.cancel()
        if not running.done():  # the client left first
            return Answer(b"", "cancelled", "the client closed the stream before the component answered")
        if running.cancelled():  # the drain grace ran out
            text = f"Pod {self.instance_id} shut down before the component finished (drain grace {self.settings.drain_grace_seconds:g}s); retry the step"
            answer = Answer(jsonrpc.failure(job.request_id, jsonrpc.SERVER_ERROR, text, {"reason": "draining", "retriable": True}), "cancelled", text)
        else:
            answer = running.result()
        await send({"type": "http.response.body", "body": encode_event(answer.body), "more_body": False})
        return answer

    def _unavailable(self, request_id: jsonrpc.RequestId, reason: RejectReason) -> Reply:
        if reason == "draining":
            text = f"Pod {self.instance_id} is shutting down and takes no new executions; retry on another pod"
        else:
            text = f"Pod {self.instance_id} is at its concurrency limit ({self.admission.limit} executions in flight); retry later or on another pod"
        return Reply(503, jsonrpc.failure(request_id, jsonrpc.SERVER_ERROR, text, {"reason": reason, "retriable": True}))

    def _finish(self, job: ExecuteJob, answer: Answer, seconds: float, traceparent: str | None) -> None:
        self.admission.leave()
        self.metrics.in_flight.dec()
        self.metrics.execution_finished(job.component.name, answer.outcome, seconds)
        observability = job.params.observability
        trace = parse_traceparent(traceparent)
        log_event(
            logger,
            "execution_finished",
            level=logging.INFO if answer.outcome == "success" else logging.WARNING,
            instance_id=self.instance_id,
            request_id=job.request_id,
            component=job.component.name,
            attempt=job.params.attempt,
            outcome=answer.outcome,
            duration_ms=round(seconds * 1000, 3),
            run_id=observability.run_id,
            flow_id=observability.flow_id,
            step_id=observability.step_id,
            trace_id=trace.trace_id if trace else observability.trace_id,
            span_id=trace.span_id if trace else observability.span_id,
            error=answer.error,
        )
        if self._drained is not None and self.admission.idle:
            self._drained.set()

    async def _send_json(self, send: Send, reply: Reply, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Every JSON answer names the pod too, not only SSE ones: the runtime records which pod ran each step."""
        response_headers = [(b"content-type", _JSON_TYPE), (b"content-length", str(len(reply.body)).encode()), self._instance_header, *extra]
        await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def drain(self) -> None:
        """Refuse new executions, let in-flight ones finish within the grace, then cancel the rest."""
        self.admission.start_draining()
        self.metrics.set_draining()
        self._drained = asyncio.Event()
        grace = self.settings.drain_grace_seconds
        log_event(logger, "drain_started", instance_id=self.instance_id, in_flight=self.admission.in_flight, grace_seconds=grace)
        if not self.admission.idle:
            try:
                await asyncio.wait_for(self._drained.wait(), grace)
            except TimeoutError:
                log_event(
                    logger,
                    "drain_grace_expired",
                    level=logging.WARNING,
                    instance_id=self.instance_id,
                    cancelled=len(self._streams),
                    in_flight=self.admission.in_flight,
                )
                for stream in list(self._streams):
                    stream.cancel()
                await asyncio.sleep(0.1)  # let the cancelled streams write their last event
        log_event(logger, "drain_finished", instance_id=self.instance_id, in_flight=self.admission.in_flight)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past ``limit`` bytes."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body if len(body) <= limit else None
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > limit:
            return None
    return b"".join(parts)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """404/405 on the pod's other paths, as JSON like every other answer it gives."""
    assert isinstance(error, HTTPException)
    if error.status_code == 405 or (error.status_code == 404 and request.url.path == "/"):
        message = f"{request.method} {request.url.path} is not allowed: the pod takes POST / (JSON-RPC) and GET /health"
        return JSONResponse(
            {"error": {"code": jsonrpc.INVALID_REQUEST, "message": message}}, status_code=405, headers={"allow": "POST" if request.url.path == "/" else "GET"}
        )
    message = f"No such path {request.url.path}: the pod serves POST / (JSON-RPC) and GET /health"
    return JSONResponse({"error": {"code": jsonrpc.INVALID_REQUEST, "message": message}}, status_code=error.status_code)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
