"""One request through the proxy: route it, send it to a pod, stream the answer back.

When the chosen pod has an idle pooled connection (the usual case) the request leaves in
the same loop turn that parsed it and the exchange runs on callbacks alone; otherwise a
task runs the attempts (connecting may wait, and an unknown instance waits for one
rediscovery). Everything after the response head is callbacks, so body pieces and SSE
events go from the pod's socket to the client's with no queue between.
Unpinned requests move to another pod when connecting fails or the pod answers 503
(full), while the request can still be replayed and nothing has reached the client.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from affinity_proxy import answers
from affinity_proxy.http1 import (
    LAST_CHUNK,
    Framing,
    Headers,
    encode_chunk,
    encode_head,
    end_to_end,
    request_line,
    response_framing,
    status_line,
)
from affinity_proxy.membership import Member
from affinity_proxy.selection import Decision, Route
from affinity_proxy.upstream import UpstreamConnection
from telemetry.logs import log_event

if TYPE_CHECKING:
    from affinity_proxy.client import ClientConnection
    from affinity_proxy.proxy import Proxy

logger = logging.getLogger("affinity_proxy.route")


class Outcome(enum.Enum):
    COMPLETED = "completed"
    POD_FULL = "pod_full"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_FAILED = "connect_failed"
    UPSTREAM_FAILED = "upstream_failed"
    """The pod went away after the request was sent, before any answer."""
    BROKEN = "broken"
    """The pod or the client went away mid-answer; the client connection is closed."""
    TOO_LARGE = "too_large"


_NO_PINS: set[bytes] = set()

NEXT_POD = (Outcome.POD_FULL, Outcome.CONNECT_FAILED, Outcome.CONNECT_REFUSED)
"""Outcomes after which an unpinned request may go to another pod: nothing reached it or the client."""

class RequestHead:
    __slots__ = ("method", "target", "headers", "instance_id", "pins", "framing", "keep_alive", "http_1_0", "request_id", "trace_id", "expects_continue")

    def __init__(self, method: bytes, target: bytes, headers: Headers, framing: Framing, keep_alive: bool, http_1_0: bool) -> None:
        self.method, self.target, self.headers, self.framing = method, target, headers, framing
        self.keep_alive, self.http_1_0 = keep_alive, http_1_0
        self.instance_id: str | None = None
        self.pins: set[bytes] = _NO_PINS
        """Every Stepflow-Instance-Id value the request carries (two different ones are refused)."""
        self.request_id: str | None = None
        self.trace_id: str | None = None
        self.expects_continue = False
        for name, value in headers:
            if name == b"stepflow-instance-id":
                self.instance_id = value.decode("latin-1").strip() or None
                self.pins = self.pins | {value}
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"traceparent" and len(value) >= 35:
                self.trace_id = value[3:35].decode("latin-1")
            elif name == b"expect":
                self.expects_continue = value.lower() == b"100-continue"
                self.headers = [(n, v) for n, v in headers if n != b"expect"]  # the proxy answers it itself


class Exchange:
    def __init__(self, proxy: Proxy, client: ClientConnection, head: RequestHead) -> None:
        self.proxy, self.client, self.head = proxy, client, head
        self.started = time.monotonic()
        self.request_done = False
        self.body_size = 0
        self.status = 0
        self.keep_alive = head.keep_alive
        self._chunks: list[bytes] = []
        self._replayable = True
        self._upstream: UpstreamConnection | None = None
        self._upstream_head = encode_head(request_line(head.method, head.target), end_to_end(head.headers), head.framing)
        self._client_framing = Framing.NONE
        self._head_sent = False
        self._waiter: asyncio.Future[Outcome] | None = None
        self._immediate: Route | None = None
        """The route of an attempt started without a task; its outcome arrives by callback."""
        self._done: Callable[[Exchange], None] = _nothing
        self._aborted: Outcome | None = None
        self._attempt_started = 0.0

    # -- the request, as the client connection parses it -----------------------------
    def request_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.body_size > self.proxy.config.max_body_bytes:
            self._abort(Outcome.TOO_LARGE)
            return
        if self._upstream is not None:
            self._upstream.write(self._frame_request(data))
        if self._replayable or self._upstream is None:
            self._chunks.append(data)
            if self.body_size > self.proxy.config.replay_bytes:
                self._replayable = False
                if self._upstream is not None:
                    self._chunks.clear()

    def request_complete(self) -> None:
        self.request_done = True
        if self._upstream is not None and self.head.framing is Framing.CHUNKED:
            self._upstream.write(LAST_CHUNK)

    # -- the attempts ------------------------------------------------------------------
    def start(self, done: Callable[[Exchange], None]) -> None:
        """Forward the request; ``done`` is called once the exchange is over (answered or broken).

        With an idle connection to the chosen pod, the request is written now, in the loop
        turn that parsed it; anything else (connecting, rediscovery, another attempt) runs
        in a task.
        """
        self._done = done
        route = self.proxy.selector.route(self.head.instance_id)
        member = route.member
        if self._aborted is None and member is not None and route.decision is not Decision.INSTANCE_GONE:
            connection = self.proxy.pool_for(member).take_idle()
            if connection is not None:
                self._begin_attempt(member)
                self._immediate = route
                self._send_to(connection)
                return
        asyncio.get_running_loop().create_task(self._run_then_done([], route))

    async def _run_then_done(self, tried: list[Member], first: Route | None = None) -> None:
        try:
            await self.run(tried, first)
        finally:
            self._done(self)

    def _immediate_settled(self, route: Route, outcome: Outcome) -> None:
        """The end of an attempt started without a task: the same bookkeeping ``run`` does."""
        member = route.member
        assert member is not None
        member.release()
        self._finish_attempt(route, outcome)
        if outcome in NEXT_POD and route.decision is not Decision.PINNED and self.proxy.config.max_attempts > 1:
            asyncio.get_running_loop().create_task(self._run_then_done([member]))
            return
        self._answer_failure(route, outcome, 1)
        self._done(self)

    async def run(self, tried: list[Member], first: Route | None = None) -> None:
        """The attempts; ``tried`` are the pods already tried (and failed), ``first`` the route already chosen."""
        refreshed = False
        while self._aborted is None:
            route, first = first or self.proxy.selector.route(self.head.instance_id, tried), None
            if route.decision is Decision.INSTANCE_GONE and route.member is None and not refreshed:
                refreshed = True
                await self.proxy.discovery.refresh_after(self.started)
                continue
            if route.member is None or route.decision is Decision.INSTANCE_GONE:
                self._answer_unroutable(route, tried)
                return
            outcome = await self._attempt(route, route.member)
            if outcome in NEXT_POD and route.decision is not Decision.PINNED:
                tried.append(route.member)
                if len(tried) < self.proxy.config.max_attempts:
                    continue
            self._answer_failure(route, outcome, len(tried))
            return
        self._answer_failure(Route(Decision.NO_BACKENDS), self._aborted, len(tried))

    async def _attempt(self, route: Route, member: Member) -> Outcome:
        self._begin_attempt(member)
        pool = self.proxy.pool_for(member)
        try:
            connection = pool.take_idle()
            if connection is None:
                try:
                    connection = await pool.connect()
                except ConnectionRefusedError:
                    self.proxy.membership.connection_refused(member)
                    return self._finish_attempt(route, Outcome.CONNECT_REFUSED)
                except (OSError, TimeoutError):
                    return self._finish_attempt(route, Outcome.CONNECT_FAILED)
            if self._aborted is not None:  # the client left or overflowed while we connected
                pool.give_back(connection)
                return self._finish_attempt(route, self._aborted)
            self._waiter = asyncio.get_running_loop().create_future()
            self._send_to(connection)
            return self._finish_attempt(route, await self._waiter)
        finally:
            member.release()

    def _begin_attempt(self, member: Member) -> None:
        member.acquire()
        self.status = 0
        self._attempt_started = time.monotonic()

    def _send_to(self, connection: UpstreamConnection) -> None:
        self._upstream = connection
        connection.attach(self, head_only=self.head.method == b"HEAD")
        parts = [self._upstream_head]
        parts.extend(self._frame_request(chunk) for chunk in self._chunks)
        if self.request_done and self.head.framing is Framing.CHUNKED:
            parts.append(LAST_CHUNK)
        connection.write(b"".join(parts))
        if not self._replayable:
            self._chunks.clear()

    def _frame_request(self, data: bytes) -> bytes:
        return encode_chunk(data) if self.head.framing is Framing.CHUNKED else data

    def _finish_attempt(self, route: Route, outcome: Outcome) -> Outcome:
        member = route.member
        assert member is not None
        now = time.monotonic()
        pod = member.address
        decision = route.decision.value
        self.proxy.metrics.request_done(decision, pod, self.status)
        log_event(
            logger,
            "routing_decision",
            decision=decision,
            instance_id=member.instance_id,
            pod_address=pod,
            status=self.status or None,
            outcome=outcome.value,
            duration_ms=round((now - self._attempt_started) * 1000, 3),
            request_id=self.head.request_id,
            trace_id=self.head.trace_id,
        )
        return outcome

    # -- the response, as the pod connection parses it ---------------------------------
    def response_head(self, status: int, reason: bytes, headers: Headers, framing: Framing) -> None:
        self.status = status
        if status == 503 and self.head.instance_id is None and self._replayable:
            self._drop_upstream()
            self._settle(Outcome.POD_FULL)
            return
        self.proxy.metrics.first_byte(self._upstream_pod(), time.monotonic() - self._attempt_started)
        self._client_framing = response_framing(framing, self.head.http_1_0)
        if self._client_framing is Framing.CLOSE:
            self.keep_alive = False
        response_headers = end_to_end(headers)
        if not self.keep_alive and self._client_framing is not Framing.CLOSE:
            response_headers.append((b"connection", b"close"))
        self._head_sent = True
        self.client.write(encode_head(status_line(status, reason), response_headers, self._client_framing))

    def response_body(self, data: bytes) -> None:
        if self._head_sent:
            self.client.write(encode_chunk(data) if self._client_framing is Framing.CHUNKED else data)

    def response_complete(self) -> None:
        if not self._head_sent:
            return
        if self._client_framing is Framing.CHUNKED:
            self.client.write(LAST_CHUNK)
        if not self.request_done and self._upstream is not None:
            self._upstream.reusable = False
        self._settle(Outcome.COMPLETED)

    def upstream_lost(self) -> None:
        if not self._head_sent:
            self._settle(Outcome.UPSTREAM_FAILED)
        elif self._client_framing is Framing.CLOSE:
            self._settle(Outcome.COMPLETED)  # the body was delimited by the close itself
        else:
            self._break()

    def upstream_writable(self, writable: bool) -> None:
        self.client.pause_reading(not writable)

    def hold_output(self, held: bool) -> None:
        self.client.hold_output(held)

    def client_writable(self, writable: bool) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading(not writable)

    def client_lost(self) -> None:
        """The client went away: the pod's work for it is abandoned, not left streaming."""
        self._abort(Outcome.BROKEN)

    # -- internals ---------------------------------------------------------------------
    def _upstream_pod(self) -> str:
        return self._upstream.pool.host if self._upstream is not None else ""

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.sink = None
            self._upstream.close()
            self._upstream = None

    def _break(self) -> None:
        self.keep_alive = False
        self._settle(Outcome.BROKEN)

    def _settle(self, outcome: Outcome) -> None:
        if self._immediate is not None:
            route, self._immediate = self._immediate, None
            self._immediate_settled(route, outcome)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(outcome)

    def _abort(self, outcome: Outcome) -> None:
        """End the exchange from the client side (gone, or a body over the limit)."""
        self._aborted = outcome
        self.keep_alive = False
        self._drop_upstream()
        self._settle(outcome)

    def _answer_unroutable(self, route: Route, tried: list[Member]) -> None:
        if route.decision is Decision.INSTANCE_GONE:
            state = route.member.state.value if route.member is not None else "unknown"
            message = f"instance {route.instance_id!r} is not available ({state}); its work cannot continue on another pod"
            self._answer(503, message, route.decision.value, retryable=False, instance_id=route.instance_id, retry_after=True)
        else:
            message = "no active component-server pod to send the request to" if not tried else f"no pod took the request after {len(tried)} attempts"
            self._answer(503, message, route.decision.value, retryable=True, retry_after=True)
        self.proxy.metrics.request_done(route.decision.value, "", 503)
        log_event(logger, "routing_decision", decision=route.decision.value, instance_id=route.instance_id, status=503,
                  duration_ms=round((time.monotonic() - self.started) * 1000, 3), request_id=self.head.request_id, trace_id=self.head.trace_id)

    def _answer_failure(self, route: Route, outcome: Outcome, attempts: int) -> None:
        member = route.member
        if outcome is Outcome.COMPLETED or self._head_sent or outcome is Outcome.BROKEN:
            if outcome is not Outcome.COMPLETED:
                self.keep_alive = False
            return
        if outcome is Outcome.TOO_LARGE or member is None:
            limit = self.proxy.config.max_body_bytes
            self._answer(413, f"request body larger than {limit} bytes", "rejected", retryable=False)
        elif route.decision is Decision.PINNED and outcome is Outcome.CONNECT_REFUSED:
            self._answer(503, f"instance {member.instance_id!r} at {member.address} refused the connection: it is gone", Decision.INSTANCE_GONE.value,
                         retryable=False, instance_id=member.instance_id, retry_after=True)
        elif outcome is Outcome.POD_FULL:
            self._answer(503, f"every pod tried is full ({attempts} attempts)", Decision.RETRY.value, retryable=True, retry_after=True)
        else:
            detail = "failed before answering" if outcome is Outcome.UPSTREAM_FAILED else "could not be reached"
            self._answer(502, f"pod {member.address} (instance {member.instance_id!r}) {detail}", route.decision.value,
                         retryable=outcome is not Outcome.UPSTREAM_FAILED, instance_id=member.instance_id)

    def _answer(self, status: int, message: str, decision: str, *, retryable: bool, instance_id: str | None = None, retry_after: bool = False) -> None:
        self.status = status
        if not self.request_done:
            self.keep_alive = False
        request_id = answers.request_id_of(b"".join(self._chunks)) if self._replayable and self.request_done else None
        self.client.write(
            answers.error_response(
                status, message, decision=decision, retryable=retryable, instance_id=instance_id, request_id=request_id,
                retry_after_seconds=self.proxy.config.retry_after_seconds if retry_after else None, keep_alive=self.keep_alive,
            )
        )


def _nothing(exchange: Exchange) -> None:
    pass
