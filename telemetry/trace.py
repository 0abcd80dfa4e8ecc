"""W3C trace context (traceparent, tracestate): one trace id joins a run's lines across services.

The runtime starts one trace per run (a sub-run joins its parent's trace) and a child
span per step execution; its ``tracestate`` entry ``stepflow=<run id>`` lets any
W3C-aware tool on the path name the run without reading the JSON-RPC body.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


VENDOR_KEY = "stepflow"


class TraceContext(NamedTuple):
    trace_id: str
    span_id: str
    flags: str = "01"
    state: str = ""
    """The ``tracestate`` header's value, carried unchanged to child spans ("" when none)."""

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def tracestate(self) -> str | None:
        return self.state or None

    def child(self) -> TraceContext:
        """Same trace, new span: what a step or a call made on behalf of this span carries."""
        return TraceContext(self.trace_id, new_span_id(), self.flags, self.state)


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def run_trace(run_id: str, parent_trace_id: str | None = None) -> TraceContext:
    """A run's root span: in its parent run's trace if it has one, else in a new trace."""
    return TraceContext(parent_trace_id or new_trace_id(), new_span_id(), state=f"{VENDOR_KEY}={run_id}")


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
