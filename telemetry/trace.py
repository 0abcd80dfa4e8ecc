"""W3C trace context (traceparent): one trace id joins a run's lines across services."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str
    flags: str = "01"

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> "TraceContext":
        """Same trace, new span: what a step or a call made on behalf of this span carries."""
        return TraceContext(self.trace_id, new_span_id(), self.flags)


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def new_trace() -> TraceContext:
    return TraceContext(new_trace_id(), new_span_id())


def parse_traceparent(value: str | None) -> TraceContext | None:
    """None for a missing or malformed header, or the all-zero ids the standard forbids."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, flags)
