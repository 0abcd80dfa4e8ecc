"""Pipeline phase 6 at a request's rate: the routing line and the metrics of one attempt on a pod.

The line is the one ``telemetry.logs.log_event`` writes, byte for byte. While lines are batched
(``telemetry.log_batching``) it is put together from pieces: the line's start, made once per
millisecond (and the logger's level asked with it); the route's fields (decision, instance, pod, status, outcome), made once per
(route, status, outcome) together with the request counter's child; and the fields that vary
(duration, request and trace ids), one ``msgspec`` encode; the line's start is kept for the millisecond. It joins the batch in one call.
Without batching (tests, tools) the line goes through ``log_event`` as any other.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import msgspec

from affinity_proxy.metrics import ProxyMetrics
from affinity_proxy.routing import Outcome, Route
from affinity_proxy.tallies import Count, Histogram
from telemetry.log_batching import BatchedStream
from telemetry.logs import JsonLineFormatter, log_event

EVENT: Final = "routing_decision"
_MAX_ROUTES: Final = 4096
"""Pieces kept for at most this many (route, status, outcome): pods come and go over months."""
_encode: Final = msgspec.json.Encoder().encode


def milliseconds(seconds: float) -> float:
    """A routing line's ``duration_ms``: to the µs, half up (``round(ms, 3)`` costs a dtoa and an snprintf, ~0.5 µs)."""
    return int(seconds * 1e6 + 0.5) / 1000


class Accounting:
    def __init__(self, metrics: ProxyMetrics, logger: logging.Logger) -> None:
        self._metrics = metrics
        self._logger = logger
        self._routes: dict[tuple[Route, int, Outcome], tuple[str, Count]] = {}
        """(route, status, outcome) -> (its fields as JSON, without braces; the request counter's child)."""
        self._first_bytes: dict[Route, Histogram] = {}
        """route -> the first-byte histogram of its pod."""
        self._handler: logging.StreamHandler[Any] | None = None
        self._batch: BatchedStream | None = None
        self._formatter: JsonLineFormatter | None = None
        self._millisecond = -1
        self._start = ""
        self._info = False
        """The logger logs at INFO (asked once per millisecond, with the line's start)."""

    def first_byte(self, route: Route, seconds: float) -> None:
        """The pod of ``route`` sent its answer's head ``seconds`` after the request left."""
        histogram = self._first_bytes.get(route)
        if histogram is None:
            assert route.member is not None
            if len(self._first_bytes) >= _MAX_ROUTES:
                self._first_bytes.clear()
            histogram = self._first_bytes[route] = self._metrics.first_byte_histogram(route.member.address)
        histogram.observe(seconds)

    def attempt(self, route: Route, status: int, outcome: Outcome, seconds: float, request_id: str | None, trace_id: str | None) -> None:
        """One attempt on ``route.member`` is over: count it and log its line."""
        key = (route, status, outcome)
        known = self._routes.get(key)
        if known is None:
            known = self._learn(key)
        fields, counter = known
        counter.inc()
        duration_ms = milliseconds(seconds)
        handler = self._handler
        if handler is None or handler.stream is not self._batch:
            self._find_batch()
        batch = self._batch
        if batch is None:
            member = route.member
            assert member is not None
            log_event(
                self._logger,
                EVENT,
                decision=route.decision,
                instance_id=member.instance_id,
                pod_address=member.address,
                status=status or None,
                outcome=outcome,
                duration_ms=duration_ms,
                request_id=request_id,
                trace_id=trace_id,
            )
            return
        now = time.time()
        second = int(now)
        millisecond = second * 1000 + int((now - second) * 1000)  # as the formatter computes the line's ts
        if millisecond != self._millisecond:
            assert self._formatter is not None
            self._millisecond, self._start = millisecond, self._formatter.event_line(now, "INFO", EVENT, {})[:-1] + ","
            self._info = self._logger.isEnabledFor(logging.INFO)  # a new level counts from the next millisecond
        if not self._info:
            return
        if request_id is None and trace_id is None:
            batch.write(f'{self._start}{fields}"duration_ms":{_encode(duration_ms).decode()}}}\n')
            return
        varying: dict[str, object] = {"duration_ms": duration_ms}
        if request_id is not None:
            varying["request_id"] = request_id
        if trace_id is not None:
            varying["trace_id"] = trace_id
        batch.write(self._start + fields + _encode(varying)[1:].decode() + "\n")

    def _learn(self, key: tuple[Route, int, Outcome]) -> tuple[str, Count]:
        route, status, outcome = key
        member = route.member
        assert member is not None
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        fields: dict[str, object] = {"decision": route.decision, "instance_id": member.instance_id, "pod_address": member.address}
        if status:
            fields["status"] = status
        fields["outcome"] = outcome
        known = self._routes[key] = (_encode(fields)[1:-1].decode() + ",", self._metrics.request_counter(route.decision._value_, member.address, status))
        return known

    def _find_batch(self) -> None:
        """The batch lines go to, or None when they are not batched (or the handler's formatter is not the JSON one)."""
        self._handler = self._batch = self._formatter = None
        self._millisecond = -1
        for candidate in logging.getLogger().handlers:
            if isinstance(candidate, logging.StreamHandler) and isinstance(candidate.stream, BatchedStream):
                if isinstance(candidate.formatter, JsonLineFormatter):
                    self._handler, self._batch, self._formatter = candidate, candidate.stream, candidate.formatter
                return
