"""Answers the proxy makes itself: JSON-RPC error bodies the runtime can parse, and JSON views.

Pure. The runtime parses any 4xx/5xx body as JSON-RPC (protocol.md §6), so every
error the proxy generates is a JSON-RPC error object saying what was decided and
whether trying again can help.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from wire_protocol import headers as wire_headers
from wire_protocol import jsonrpc

_encoder = msgspec.json.Encoder()


def json_response(status: int, payload: Any, connection: bytes | None = None, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """``connection``: the Connection field's value, if the answer has one (``http1.connection_field``)."""
    body = _encoder.encode(payload)
    lines = [
        b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()),
        b"content-type: " + wire_headers.JSON.encode(),
        b"content-length: %d" % len(body),
    ]
    lines.extend(name + b": " + value for name, value in extra or [])
    if connection is not None:
        lines.append(b"connection: " + connection)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def error_response(
    status: int,
    message: str,
    *,
    decision: str,
    retryable: bool,
    instance_id: str | None = None,
    request_id: jsonrpc.RequestId | None = None,
    retry_after_seconds: int | None = None,
    connection: bytes | None = None,
) -> bytes:
    """A complete HTTP response whose body is a JSON-RPC error naming the decision and instance."""
    data = {"decision": decision, "retryable": retryable, "instance_id": instance_id}
    envelope = jsonrpc.Failure(id=request_id, error=jsonrpc.Error(jsonrpc.SERVER_ERROR, message, data))
    extra = [(b"retry-after", b"%d" % retry_after_seconds)] if retry_after_seconds is not None else None
    return json_response(status, envelope, connection, extra)


def request_id_of(body: bytes) -> jsonrpc.RequestId | None:
    """The id of the JSON-RPC request in a body, so an error answer can name it; None otherwise."""
    try:
        envelope = jsonrpc.decode_envelope(body)
    except jsonrpc.ProtocolError:
        return None
    return envelope.id if jsonrpc.is_request(envelope) else None
