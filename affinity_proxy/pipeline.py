"""One request through the proxy: a fixed sequence of phases over one per-request context.

The phases, in order (Pingora's ``ProxyHttp`` shape), each a method of ``Exchange``:

1. request filter: ``request_filter`` refuses a pin that can never be honoured (the client
   connection parsed the head into a ``RequestHead``; the proxy answers its own paths there);
2. choose a pod: ``_choose``, by ``routing.Selector`` (an unknown pinned instance waits
   for one rediscovery round first);
3. connect or retry: ``_connect`` takes an idle pooled connection, or a task connects;
   ``_attempt_over`` applies ``routing.may_retry``, the one retry rule, and goes back to 2;
4. forward: ``_forward`` writes the head and the body so far in one write, then body
   pieces as they come;
5. relay the answer: ``response_head``/``response_body``/``response_complete``, called by
   the pod connection, write to the client in the loop turn the bytes arrived in;
6. log and account: ``_account``, one routing line and the metrics per attempt.

With an idle connection to the chosen pod (the usual case) the whole exchange runs on
callbacks, in the loop turn that parsed the request; a task exists only while something
must be waited for (connecting, rediscovery). Policy lives in ``routing``; this module
only carries it out. It knows the client connection and the proxy only through the
narrow ``ClientSide`` and ``Services`` interfaces below.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from mypy_extensions import trait

from affinity_proxy import answers, instance_ids
from affinity_proxy.accounting import Accounting, milliseconds
from affinity_proxy.config import ProxyConfig
from affinity_proxy.discovery import Discovery
from affinity_proxy.http1 import (
    HOP_BY_HOP,
    LAST_CHUNK,
    Framing,
    Headers,
    connection_field,
    encode_chunk,
    forwarded_request_head,
    relayed_response_head,
    response_framing,
)
from affinity_proxy.membership import Member, Membership
from affinity_proxy.metrics import ProxyMetrics
from affinity_proxy.routing import Decision, Outcome, Refusal, Route, Selector, give_up, may_retry, unroutable
from affinity_proxy.upstream import PodPool, ResponseSink, UpstreamConnection
from telemetry.logs import log_event

logger = logging.getLogger("affinity_proxy.route")

_NO_PINS: Final[frozenset[bytes]] = frozenset()
_READ: Final = frozenset({b"content-length", b"transfer-encoding", b"stepflow-instance-id", b"x-request-id", b"traceparent", b"expect"} | HOP_BY_HOP)
"""The request fields the proxy reads or drops (most fields are none of these: one set lookup each)."""


@trait
class ClientSide:
    """What an exchange needs of the client connection it answers on (a mypyc trait, as ``upstream.ResponseSink``)."""

    def write(self, data: bytes) -> None: ...
    def hold_output(self, held: bool) -> None: ...
    def pause_reading(self, paused: bool) -> None: ...


@trait
class Services:
    """What an exchange needs of the proxy: settings, the routing policy, pools, discovery, metrics (a mypyc trait)."""

    config: ProxyConfig
    membership: Membership
    selector: Selector
    metrics: ProxyMetrics
    discovery: Discovery
    accounting: Accounting

    def pool_for(self, member: Member) -> PodPool:
        raise NotImplementedError


class RequestHead:
    """A parsed request head and the fields the proxy frames, routes and logs by, found in one pass."""

    __slots__ = (
        "method",
        "target",
        "headers",
        "raw",
        "instance_id",
        "pins",
        "framing",
        "content_length",
        "keep_alive",
        "http_1_0",
        "request_id",
        "trace_id",
        "expects_continue",
    )

    def __init__(self, method: bytes, target: bytes, headers: Headers, keep_alive: bool, http_1_0: bool, raw: bytes | None = None) -> None:
        """``raw``: the head's lines as they came, each ending in CRLF, without the blank line (None when not at hand).

        ``self.raw`` keeps it only when it can be forwarded as it came: HTTP/1.1, no hop-by-hop,
        ``Proxy-*`` or ``Expect`` field.
        """
        self.method, self.target, self.headers = method, target, headers
        self.keep_alive, self.http_1_0 = keep_alive, http_1_0
        self.content_length = 0
        chunked = False
        self.instance_id: str | None = None
        self.pins: frozenset[bytes] = _NO_PINS
        """Every Stepflow-Instance-Id value the request carries (two different ones are refused)."""
        self.request_id: str | None = None
        self.trace_id: str | None = None
        self.expects_continue = False
        as_it_came = raw is not None and not http_1_0
        for name, value in headers:
            if name not in _READ:
                if as_it_came and name.startswith(b"proxy-"):
                    as_it_came = False
                continue
            if name == b"content-length":
                self.content_length = int(value)  # the parser has checked it is a number, and the only one
            elif name == b"transfer-encoding":
                chunked, as_it_came = True, False
            elif name == b"stepflow-instance-id":
                self.instance_id = value.decode("latin-1").strip() or None
                self.pins = self.pins | {value}
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"traceparent":
                if len(value) >= 35:
                    self.trace_id = value[3:35].decode("latin-1")
            elif name == b"expect":
                self.expects_continue, as_it_came = value.lower() == b"100-continue", False
                self.headers = [(n, v) for n, v in headers if n != b"expect"]  # the proxy answers it itself
            else:  # a hop-by-hop field
                as_it_came = False
        self.raw = raw if as_it_came else None
        if chunked:
            self.framing, self.content_length = Framing.CHUNKED, 0
        else:
            self.framing = Framing.LENGTH if self.content_length else Framing.NONE


@trait
class Forwarded:
    """A request on its way to a pod, as the client connection drives it (a mypyc trait)."""

    head: RequestHead
    keep_alive: bool
    request_done: bool

    def request_body(self, data: bytes) -> None: ...
    def request_complete(self) -> None: ...
    def start(self, done: Callable[[Forwarded], None]) -> None: ...
    def client_writable(self, writable: bool) -> None: ...
    def client_lost(self) -> None: ...


def request_filter(head: RequestHead, membership: Membership) -> str | None:
    """Phase 1: why a request can never be forwarded (two different pins, or an unknown pin that is malformed or an address), or None."""
    if len(head.pins) > 1:
        return f"{len(head.pins)} different Stepflow-Instance-Id headers: a request is pinned to one instance at most"
    if head.instance_id is None or membership.find(head.instance_id) is not None:
        return None
    return instance_ids.problem(head.instance_id)


class Exchange(Forwarded, ResponseSink):
    """The per-request context the phases share."""

    __slots__ = (
        "services",
        "client",
        "head",
        "started",
        "request_done",
        "body_size",
        "status",
        "keep_alive",
        "_chunks",
        "_replayable",
        "_upstream",
        "_upstream_head",
        "_client_framing",
        "_head_sent",
        "_done",
        "_aborted",
        "_route",
        "_tried",
        "_refreshed",
        "_attempt_started",
        "_answering",
    )

    def __init__(self, services: Services, client: ClientSide, head: RequestHead) -> None:
        self.services, self.client, self.head = services, client, head
        self.started = time.monotonic()
        self.request_done = False
        self.body_size = 0
        self.status = 0
        self.keep_alive = head.keep_alive
        self._chunks: list[bytes] = []
        self._replayable = True
        self._upstream: UpstreamConnection | None = None
        self._upstream_head = forwarded_request_head(head.raw, head.method, head.target, head.headers, head.framing)
        self._client_framing = Framing.NONE
        self._head_sent = False
        self._done: Callable[[Exchange], None] = _nothing
        self._aborted: Outcome | None = None
        self._route: Route | None = None
        """The route of the attempt in progress, None between attempts."""
        self._tried: list[Member] = []
        self._refreshed = False
        self._attempt_started = 0.0
        self._answering = False
        """The request is on a pod connection and its answer is awaited or being relayed."""

    # -- the request, as the client connection parses it -----------------------------
    def request_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.body_size > self.services.config.max_body_bytes:
            self._abort(Outcome.TOO_LARGE)
            return
        if self._upstream is not None:
            self._upstream.write(self._frame_request(data))
        if self._replayable or self._upstream is None:
            self._chunks.append(data)
            if self.body_size > self.services.config.replay_bytes:
                self._replayable = False
                if self._upstream is not None:
                    self._chunks.clear()

    def request_complete(self) -> None:
        self.request_done = True
        if self._upstream is not None and self.head.framing is Framing.CHUNKED:
            self._upstream.write(LAST_CHUNK)

    def start(self, done: Callable[[Exchange], None]) -> None:
        """Run the phases; ``done`` is called once the exchange is over (answered or broken)."""
        self._done = done
        self._choose()

    # -- 2. choose a pod ---------------------------------------------------------------
    def _choose(self) -> None:
        if self._aborted is not None:
            self._give_up(Route(Decision.NO_BACKENDS), self._aborted)
            return
        route = self.services.selector.route(self.head.instance_id, self._tried)
        if not route.unroutable:
            self._connect(route)
        elif route.worth_rediscovery and not self._refreshed:
            self._refreshed = True
            asyncio.get_running_loop().create_task(self._rediscover())
        else:
            self._refuse(unroutable(route, len(self._tried)))
            self._account_unroutable(route)
            self._finish()

    async def _rediscover(self) -> None:
        await self.services.discovery.refresh_after(self.started)
        self._choose()

    # -- 3. connect or retry -----------------------------------------------------------
    def _connect(self, route: Route) -> None:
        member = route.member
        assert member is not None
        member.acquire(route.decision is Decision.PINNED)
        first = not (self._tried or self._refreshed)  # the first attempt starts when the exchange does: one clock read fewer
        self._route, self.status, self._attempt_started = route, 0, self.started if first else time.monotonic()
        pool = self.services.pool_for(member)
        connection = pool.take_idle()
        if connection is not None:
            self._forward(connection)
        else:
            asyncio.get_running_loop().create_task(self._connect_then_forward(pool, member))

    async def _connect_then_forward(self, pool: PodPool, member: Member) -> None:
        try:
            connection = await pool.connect()
        except ConnectionRefusedError:
            self.services.membership.connection_refused(member)
            self._attempt_over(Outcome.CONNECT_REFUSED)
            return
        except (OSError, TimeoutError):
            self._attempt_over(Outcome.CONNECT_FAILED)
            return
        if self._aborted is not None:  # the client left or overflowed while we connected
            pool.give_back(connection)
            self._attempt_over(self._aborted)
            return
        self._forward(connection)

    def _attempt_over(self, outcome: Outcome) -> None:
        route, self._route = self._route, None
        assert route is not None and route.member is not None
        route.member.release(route.decision is Decision.PINNED)
        self._account(route, outcome)
        self._tried.append(route.member)
        if may_retry(route, outcome, len(self._tried), self.services.config.max_attempts):
            self._choose()
        else:
            self._give_up(route, outcome)

    # -- 4. forward --------------------------------------------------------------------
    def _forward(self, connection: UpstreamConnection) -> None:
        self._upstream, self._answering = connection, True
        connection.attach(self, head_only=self.head.method == b"HEAD")
        chunked = self.head.framing is Framing.CHUNKED
        if self._chunks or (self.request_done and chunked):
            parts = [self._upstream_head]
            parts.extend(map(encode_chunk, self._chunks) if chunked else self._chunks)
            if self.request_done and chunked:
                parts.append(LAST_CHUNK)
            connection.write(b"".join(parts))
            if not self._replayable:
                self._chunks.clear()
        else:
            connection.write(self._upstream_head)

    def _frame_request(self, data: bytes) -> bytes:
        return encode_chunk(data) if self.head.framing is Framing.CHUNKED else data

    # -- 5. relay the answer, as the pod connection parses it ----------------------------
    def write(self, data: bytes) -> None:
        self.client.write(data)

    def hold_output(self, held: bool) -> None:
        self.client.hold_output(held)

    def response_head(self, status: int, raw_head: bytes, framing: Framing, hop_by_hop: bool) -> None:
        self.status = status
        if status == 503 and self.head.instance_id is None and self._replayable:
            self._drop_upstream()
            self._settle(Outcome.POD_FULL)
            return
        assert self._route is not None
        self.services.accounting.first_byte(self._route, time.monotonic() - self._attempt_started)
        self._client_framing = response_framing(framing, self.head.http_1_0)
        if self._client_framing is Framing.CLOSE:
            self.keep_alive = False
        self._head_sent = True
        self.write(relayed_response_head(raw_head, self._client_framing, connection_field(self.keep_alive, self.head.http_1_0), hop_by_hop))

    def response_body(self, data: bytes) -> None:
        if self._head_sent:
            self.write(encode_chunk(data) if self._client_framing is Framing.CHUNKED else data)

    def response_complete(self) -> None:
        if not self._head_sent:
            return
        if self._client_framing is Framing.CHUNKED:
            self.write(LAST_CHUNK)
        self._upstream = None  # back in its pool already (upstream.py), or closed
        self._settle(Outcome.COMPLETED)

    def upstream_lost(self) -> None:
        """The pod went away before its answer ended (an answer delimited by close ends in response_complete)."""
        if not self._head_sent:
            self._settle(Outcome.UPSTREAM_FAILED)
        else:
            self.keep_alive = False
            self._settle(Outcome.BROKEN)

    def upstream_writable(self, writable: bool) -> None:
        self.client.pause_reading(not writable)

    def client_writable(self, writable: bool) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading(not writable)

    def client_lost(self) -> None:
        """The client went away: the pod's work for it is abandoned, not left streaming."""
        self._abort(Outcome.BROKEN)

    # -- 6. log and account --------------------------------------------------------------
    def _account(self, route: Route, outcome: Outcome) -> None:
        self.services.accounting.attempt(route, self.status, outcome, time.monotonic() - self._attempt_started, self.head.request_id, self.head.trace_id)

    def _account_unroutable(self, route: Route) -> None:
        self.services.metrics.request_done(route.decision._value_, "", 503)
        log_event(
            logger,
            "routing_decision",
            decision=route.decision,
            instance_id=route.instance_id,
            status=503,
            duration_ms=milliseconds(time.monotonic() - self.started),
            request_id=self.head.request_id,
            trace_id=self.head.trace_id,
        )

    # -- the end ---------------------------------------------------------------------------
    def _settle(self, outcome: Outcome) -> None:
        """The attempt on the pod connection is over (answered, full, lost or aborted)."""
        if self._answering:
            self._answering = False
            self._attempt_over(outcome)

    def _give_up(self, route: Route, outcome: Outcome) -> None:
        if self._head_sent or outcome is Outcome.BROKEN:
            if outcome is not Outcome.COMPLETED:
                self.keep_alive = False
        else:
            refusal = give_up(route, outcome, len(self._tried), self.services.config.max_body_bytes)
            if refusal is not None:
                self._refuse(refusal)
        self._finish()

    def _finish(self) -> None:
        done, self._done = self._done, _nothing
        done(self)

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.sink = None
            self._upstream.close()
            self._upstream = None

    def _abort(self, outcome: Outcome) -> None:
        """End the exchange from the client side (gone, or a body over the limit)."""
        self._aborted = outcome
        self.keep_alive = False
        self._drop_upstream()
        self._settle(outcome)

    def _refuse(self, refusal: Refusal) -> None:
        self.status = refusal.status
        if not self.request_done:
            self.keep_alive = False
        request_id = answers.request_id_of(b"".join(self._chunks)) if self._replayable and self.request_done else None
        retry_after = self.services.config.retry_after_seconds if refusal.retry_after else None
        self.write(
            answers.error_response(
                refusal.status,
                refusal.message,
                decision=refusal.decision,
                retryable=refusal.retryable,
                instance_id=refusal.instance_id,
                request_id=request_id,
                retry_after_seconds=retry_after,
                connection=connection_field(self.keep_alive, self.head.http_1_0),
            )
        )


def _nothing(exchange: Exchange) -> None:
    pass
