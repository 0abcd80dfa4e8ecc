"""HTTP header names and content types of the Stepflow 0.9 wire protocol."""

from __future__ import annotations

INSTANCE_ID = "Stepflow-Instance-Id"
"""Set by a pod on SSE answers; echoed by the runtime on callback answers; used by the proxy to pin."""

INSTANCE_ID_LOWER = INSTANCE_ID.lower()

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

JSON = "application/json"
SSE = "text/event-stream"
SSE_WITH_CHARSET = "text/event-stream; charset=utf-8"
ACCEPT_BOTH = "application/json, text/event-stream"

REQUEST_HEADERS: dict[str, str] = {"content-type": JSON, "accept": ACCEPT_BOTH}
"""What the runtime sends on every POST to a component server."""

SSE_RESPONSE_HEADERS: dict[str, str] = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""Sent with every SSE answer so no intermediary buffers the stream."""


def is_sse(content_type: str | None) -> bool:
    """Upstream matches on 'contains text/event-stream', so a charset parameter is harmless."""
    return content_type is not None and SSE in content_type.lower()


def is_json(content_type: str | None) -> bool:
    return content_type is not None and JSON in content_type.lower()
