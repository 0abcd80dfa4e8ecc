"""The ``type: stepflow`` plugin: components on remote component servers over HTTP.

One pooled HTTP client per plugin (remote/transport.py). Startup never waits for the fleet: ``initialize``
is retried in the background and ``health()`` says whether it got through. Each
execution is bounded by connect, idle-stream and total deadlines; a pod that cannot
be reached (or answers 503) is retried with backoff; a stream that breaks or a
callback answer that cannot be delivered raises a retriable ``TransportFailed`` so
the engine runs the step again, from the start, on another pod.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import msgspec

from runtime_server import metrics
from runtime_server.plugins.base import Callbacks, ComponentFailed, ExecuteRequest, PluginHealth, TransportFailed
from runtime_server.plugins.remote.answers import RETRY_ELSEWHERE_STATUS, Callback, Outcome, excerpt, outcome_of, read_event, read_json_answer
from runtime_server.plugins.remote.callbacks import answer_callback
from runtime_server.plugins.remote.deadlines import TICK_SECONDS, Watch, overdue
from runtime_server.plugins.remote.settings import RemoteSettings, SettingsError, remote_settings
from runtime_server.plugins.remote.transport import PodClient, Response, make_client
from runtime_server.plugins.remote.urls import Rotation, plugin_urls
from runtime_server.retry import Backoff, next_delay
from telemetry.logs import log_event
from wire_protocol import headers, jsonrpc
from wire_protocol.messages import ComponentInfo, ExecuteParams, InitializeParams, ListComponentsResult
from wire_protocol.sse import EventStreamDecoder

logger = logging.getLogger(__name__)


class _Unreachable(Exception):
    """Nothing ran: the pod could not be reached or turned the request away (503)."""


class _CallbackUndelivered(Exception):
    """The pod cannot get our answer, so its component can never finish."""


class _Stream:
    """One SSE answer being read: who sent it and how many callback answers are in flight."""

    def __init__(self, response: Response, url: str, execute_id: str, sent_headers: dict[str, str], instance_id: str | None) -> None:
        self.response = response
        self.url = url
        self.execute_id = execute_id
        self.instance_id = instance_id
        self.answers: set[asyncio.Task[None]] = set()
        self._sent_headers = sent_headers

    def trace_headers(self) -> dict[str, str]:
        """The execute request's trace context: its callback answers belong to the same step span."""
        sent = self._sent_headers
        return {name: sent[name] for name in (headers.TRACEPARENT, headers.TRACESTATE) if name in sent}

    def cancel_answers(self) -> None:
        """The component finished: answers still on their way are no longer awaited by anyone."""
        for task in self.answers:
            task.cancel()

    def describe(self) -> str:
        return f"pod {self.instance_id or '(no instance id)'} via {self.url}, request {self.execute_id}"


class StepflowHttpPlugin:
    def __init__(self, name: str, url: str | Sequence[str], settings: RemoteSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.urls = (url,) if isinstance(url, str) else tuple(url)
        self.url = self.urls[0]
        self._rotation = Rotation(self.urls)
        self._settings = settings
        self._transport = transport
        self._client: PodClient | None = None
        self._ids = itertools.count()
        self._id_prefix = os.urandom(4).hex()
        self._backoff = Backoff()
        self._initialized = False
        self._last_error: str | None = None
        self._initializer: asyncio.Task[None] | None = None
        self._watches: set[Watch] = set()
        self._deadline_ticker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._client = make_client(self._settings, self.urls, self._transport)
        self._initializer = asyncio.create_task(self._initialize_until_done(), name=f"initialize-{self.name}")
        self._deadline_ticker = asyncio.create_task(self._cancel_overdue_executions(), name=f"deadlines-{self.name}")

    async def close(self) -> None:
        for task in (self._initializer, self._deadline_ticker):
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def health(self) -> PluginHealth:
        where: dict[str, Any] = {"url": self.url} if len(self.urls) == 1 else {"urls": list(self.urls)}
        detail: dict[str, Any] = {**where, "initialized": self._initialized}
        if self._last_error is not None:
            detail["lastError"] = self._last_error
        return PluginHealth(healthy=self._initialized, detail=detail)

    async def _initialize_until_done(self) -> None:
        retry = 0
        while not self._initialized:
            try:
                await self._initialize()
            except (httpx.HTTPError, TransportFailed, ComponentFailed) as exc:
                retry += 1
                self._last_error = f"initialize failed: {_describe(exc)}"
                log_event(logger, "plugin_initialize_failed", logging.WARNING, plugin=self.name, urls=list(self.urls), error=self._last_error, retry=retry)
                await asyncio.sleep(min(self._settings.initialize_retry_seconds, self._backoff.delay(retry)))

    async def _initialize(self) -> None:
        url, _ = await self._call_first(jsonrpc.INITIALIZE, InitializeParams())
        body = jsonrpc.encode(jsonrpc.Notification(method=jsonrpc.INITIALIZED))
        response = await self._http.post(url, content=body, headers=headers.REQUEST_HEADERS)
        if response.status_code != 202:
            raise TransportFailed(f"{url} answered 'initialized' with HTTP {response.status_code}, not 202")
        self._initialized = True
        self._last_error = None
        log_event(logger, "plugin_initialized", plugin=self.name, url=url)

    # -- plain calls -------------------------------------------------------------------

    async def list_components(self) -> list[ComponentInfo]:
        _, result = await self._call_first(jsonrpc.COMPONENTS_LIST, {})
        return msgspec.convert(result, ListComponentsResult).components

    async def _call_first(self, method: str, params: Any) -> tuple[str, Any]:
        """The answer of the first URL, in config order, that answers at all (and which one it was)."""
        failures: list[str] = []
        for url in self.urls:
            try:
                return url, await self._call(url, method, params)
            except TransportFailed as exc:
                failures.append(exc.message)
        raise TransportFailed("; ".join(failures))

    async def _call(self, url: str, method: str, params: Any) -> Any:
        """A request answered with plain JSON (initialize, components/list), bounded by the total deadline."""
        request_id = self._new_id()
        try:
            async with asyncio.timeout(self._settings.total_timeout_seconds):
                response = await self._http.post(url, content=jsonrpc.request(request_id, method, params), headers=headers.REQUEST_HEADERS)
        except TimeoutError:
            raise TransportFailed(f"{url} did not answer {method} (request {request_id}) within {self._settings.total_timeout_seconds}s") from None
        except httpx.HTTPError as exc:
            raise TransportFailed(f"{method} to {url} failed: {_describe(exc)}") from None
        envelope = read_json_answer(response.status_code, response.content, request_id, url)
        if envelope.error is not msgspec.UNSET:
            raise ComponentFailed(f"{method} failed: {envelope.error.message}", envelope.error.code, envelope.error.data)
        return jsonrpc.decode_result(envelope)

    # -- execute -----------------------------------------------------------------------

    async def execute(self, request: ExecuteRequest) -> Any:
        """One execution; the engine counts it in the metrics (counting here too would double it)."""
        try:
            return await self._execute(request)
        except TransportFailed as exc:
            observability = request.observability
            log_event(
                logger,
                "execute_transport_failed",
                logging.WARNING,
                run_id=observability.run_id,
                step_id=observability.step_id,
                trace_id=observability.trace_id,
                span_id=observability.span_id,
                attempt=request.attempt,
                error=exc.message,
            )
            raise

    async def _execute(self, request: ExecuteRequest) -> Any:
        loop = asyncio.get_running_loop()
        total = request.deadline_seconds or self._settings.total_timeout_seconds
        deadline = loop.time() + total
        execute_id = self._new_id()
        params = ExecuteParams(component=request.component, input=request.input, attempt=request.attempt, observability=request.observability)
        body = jsonrpc.request(execute_id, jsonrpc.COMPONENTS_EXECUTE, params)
        request_headers = dict(headers.REQUEST_HEADERS)
        if request.traceparent:
            request_headers[headers.TRACEPARENT] = request.traceparent
        if request.tracestate:
            request_headers[headers.TRACESTATE] = request.tracestate
        retries = 0
        rotation = self._rotation
        turn = rotation.take()
        while True:
            try:
                return await self._exchange(rotation.urls[turn], body, request_headers, execute_id, request.callbacks, request.answered_by, deadline, total)
            except _Unreachable as exc:
                pause = next_delay(self._backoff, retries, self._settings.connect_retries, loop.time(), deadline)
                if pause is None:
                    raise TransportFailed(f"{exc} (request {execute_id}, {retries + 1} tries)", retriable=True, attempts=retries + 1) from None
                retries += 1
                metrics.RETRIES.labels("unreachable").inc()
                log_event(
                    logger,
                    "execute_retry",
                    logging.WARNING,
                    run_id=request.observability.run_id,
                    step_id=request.observability.step_id,
                    trace_id=request.observability.trace_id,
                    request_id=execute_id,
                    error=str(exc),
                    retry=retries,
                )
                await asyncio.sleep(pause)
                turn = rotation.after(turn)

    async def _exchange(
        self,
        url: str,
        body: bytes,
        request_headers: dict[str, str],
        execute_id: str,
        callbacks: Callbacks,
        answered_by: Callable[[str], None] | None,
        deadline: float,
        total: float,
    ) -> Any:
        stream: _Stream | None = None
        task = asyncio.current_task()
        watch = Watch(deadline, self._settings.idle_timeout_seconds, task)
        self._watches.add(watch)
        try:
            response = await self._http.stream(url, body, request_headers)
            instance_id = response.headers.get(headers.INSTANCE_ID_LOWER)
            if instance_id and answered_by is not None:
                answered_by(instance_id)
            try:
                if response.status_code == RETRY_ELSEWHERE_STATUS:
                    await response.aread()
                    raise _Unreachable(f"{url} answered HTTP 503: {excerpt(response.content)}")
                if response.is_success and headers.is_sse(response.headers.get("content-type")):
                    stream = _Stream(response, url, execute_id, request_headers, instance_id or None)
                    return (await self._read_stream(stream, callbacks, watch)).unwrap()
                await response.aread()
            finally:
                await response.aclose()
            return outcome_of(read_json_answer(response.status_code, response.content, execute_id, url)).unwrap()
        except asyncio.CancelledError:
            if watch.expired is None or task is None or task.uncancel() > watch.cancelling:
                raise
            where = stream.describe() if stream else f"{url}, request {execute_id}"
            if watch.expired == "total":
                raise TransportFailed(f"no final answer from {where} within the {total}s deadline") from None
            raise TransportFailed(f"stream from {where} was silent for {self._settings.idle_timeout_seconds}s") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Unreachable(f"cannot reach {url}: {_describe(exc)}") from None
        except httpx.HTTPError as exc:
            where = stream.describe() if stream else f"{url}, request {execute_id}"
            raise TransportFailed(f"connection to {where} broke: {_describe(exc)}") from None
        except _CallbackUndelivered as exc:
            raise TransportFailed(str(exc)) from None
        finally:
            self._watches.discard(watch)

    async def _cancel_overdue_executions(self) -> None:
        """The plugin's one deadline timer (remote/deadlines.py): cancel each execution past a limit."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for watch, reason in overdue(self._watches, loop.time()):
                watch.expired = reason
                if watch.task is not None:
                    watch.task.cancel()

    async def _read_stream(self, stream: _Stream, callbacks: Callbacks, watch: Watch) -> Outcome:
        """Read events until the final response; callback answers go out concurrently."""
        loop = asyncio.get_running_loop()
        decoder = EventStreamDecoder()
        try:
            async with asyncio.TaskGroup() as answering:
                watch.answers = stream.answers
                watch.heard(loop.time())
                async for chunk in stream.response.aiter_raw():
                    watch.heard(loop.time())
                    outcome = self._take_events(decoder.feed(chunk), stream, answering, callbacks, watch)
                    if outcome is not None:
                        return outcome
                outcome = self._take_events(decoder.close(), stream, answering, callbacks, watch)
                if outcome is not None:
                    return outcome
        except BaseExceptionGroup as group:
            raise _first_cause(group) from None
        raise TransportFailed(f"stream from {stream.describe()} ended without a final response")

    def _take_events(self, events: list[str], stream: _Stream, answering: asyncio.TaskGroup, callbacks: Callbacks, watch: Watch) -> Outcome | None:
        """Start answering each callback among the events; return the final response if it came."""
        for data in events:
            event = self._read_event(data, stream)
            if isinstance(event, Outcome):
                stream.cancel_answers()
                return event
            if isinstance(event, Callback):
                stream.answers.add(answering.create_task(self._answer(event, stream, callbacks, watch)))
        return None

    def _read_event(self, data: str, stream: _Stream) -> Callback | Outcome | None:
        try:
            event = read_event(data, stream.execute_id)
        except jsonrpc.ProtocolError as exc:
            log_event(logger, "stream_event_malformed", logging.WARNING, request_id=stream.execute_id, instance_id=stream.instance_id, error=str(exc))
            return None
        return event

    async def _answer(self, call: Callback, stream: _Stream, callbacks: Callbacks, watch: Watch) -> None:
        """Answer one callback and deliver the answer to the pod that asked (202 or the step is lost)."""
        try:
            answer = await answer_callback(callbacks, call)
            answer_headers = {**headers.REQUEST_HEADERS, **stream.trace_headers()}
            if stream.instance_id:
                answer_headers[headers.INSTANCE_ID] = stream.instance_id
            what = f"answer to {call.method} {call.request_id!r} for {stream.describe()}"
            try:
                response = await self._http.post(stream.url, content=answer, headers=answer_headers, timeout=self._settings.callback_timeout_seconds)
            except httpx.HTTPError as exc:
                metrics.CALLBACKS.labels(_method_label(call.method), "undelivered").inc()
                raise _CallbackUndelivered(f"could not deliver the {what}: {_describe(exc)}") from None
            if response.status_code != 202:
                metrics.CALLBACKS.labels(_method_label(call.method), "refused").inc()
                raise _CallbackUndelivered(f"the {what} was refused with HTTP {response.status_code}: {excerpt(response.content)}")
        finally:
            stream.answers.discard(asyncio.current_task())
            watch.heard(asyncio.get_running_loop().time())

    # -- helpers -----------------------------------------------------------------------

    @property
    def _http(self) -> PodClient:
        if self._client is None:
            raise RuntimeError(f"plugin {self.name!r} used before start()")
        return self._client

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    """The one failure that ended a stream: an undelivered answer first, else the reader's own."""
    chosen: BaseException = group.subgroup(_CallbackUndelivered) or group
    while isinstance(chosen, BaseExceptionGroup):
        chosen = chosen.exceptions[0]
    return chosen


def _method_label(method: str) -> str:
    """Pods choose method names: keep the metric's label set bounded."""
    return method if method in jsonrpc.CALLBACK_METHODS else "other"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def create_plugin(name: str, options: dict[str, Any], settings: Any) -> StepflowHttpPlugin:
    """The registry's factory for ``type: stepflow`` (config.md §2.2, remote form only)."""
    if "command" in options:
        raise SettingsError(f"plugin {name!r}: subprocess plugins ('command') are not supported; run the component server and give its 'url'")
    return StepflowHttpPlugin(name, plugin_urls(name, options), remote_settings(name, options))
