"""What a component server sent back, classified without I/O (protocol.md §6-§7).

An execute answer is a plain JSON-RPC response, or an SSE stream of callback requests
ending in the response whose id is the execute id. Everything here turns bytes into
one of: ``Callback`` (answer it), ``Outcome`` (the end), or None (ignore it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime_server.plugins.base import ComponentFailed, TransportFailed
from wire_protocol import jsonrpc
from wire_protocol.messages import ExecuteResult

RETRY_ELSEWHERE_STATUS = 503
"""A pod draining or a proxy with no backend for us: nothing ran, try again."""
GATEWAY_FAILURES = frozenset({502, 504})
"""A proxy lost the pod mid-request: whatever its body says, the step may succeed elsewhere."""


class Callback(msgspec.Struct, frozen=True):
    """A request from the pod inside the stream; it waits for our answer."""

    request_id: jsonrpc.RequestId
    method: str
    envelope: jsonrpc.Envelope


class Outcome(msgspec.Struct, frozen=True):
    """The final response to ``components/execute``: an output or a component error."""

    output: Any = None
    error: jsonrpc.Error | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise ComponentFailed(self.error.message, self.error.code, self.error.data)
        return self.output


def outcome_of(envelope: jsonrpc.Envelope) -> Outcome:
    if envelope.error is not msgspec.UNSET:
        return Outcome(error=envelope.error)
    try:
        return Outcome(output=jsonrpc.decode_result(envelope, ExecuteResult).output)
    except msgspec.ValidationError as exc:
        raise TransportFailed(f'execute result is not {{"output": ...}}: {exc}', retriable=False) from None


def read_event(data: str, execute_id: jsonrpc.RequestId) -> Callback | Outcome | None:
    """One SSE event's data. Responses to other ids and notifications are ignored, as upstream."""
    envelope = jsonrpc.decode_envelope(data)
    if jsonrpc.is_request(envelope):
        assert envelope.method is not None and envelope.id is not None
        return Callback(envelope.id, envelope.method, envelope)
    if jsonrpc.is_response(envelope) and envelope.id == execute_id:
        return outcome_of(envelope)
    return None


def read_json_answer(status: int, body: bytes, request_id: jsonrpc.RequestId, where: str) -> jsonrpc.Envelope:
    """A non-streamed answer of any status: the JSON-RPC response to ``request_id``, or a transport failure."""
    if status in GATEWAY_FAILURES:
        raise TransportFailed(f"{where} answered HTTP {status}: {_error_text(body)}", retriable=True)
    try:
        envelope = jsonrpc.decode_envelope(body)
    except jsonrpc.ProtocolError:
        raise TransportFailed(f"{where} answered HTTP {status} with no JSON-RPC response: {excerpt(body)!r}", retriable=status >= 500) from None
    if jsonrpc.is_response(envelope) and envelope.error is not msgspec.UNSET:
        return envelope
    if status >= 400 or envelope.id != request_id or not jsonrpc.is_response(envelope):
        raise TransportFailed(f"{where} answered HTTP {status} with an unexpected message: {excerpt(body)!r}", retriable=status >= 500)
    return envelope


class _ErrorBody(msgspec.Struct):
    error: jsonrpc.Error


def _error_text(body: bytes) -> str:
    """The message of a JSON-RPC-shaped error body (a proxy's ids may be null), else the raw text."""
    try:
        return msgspec.json.decode(body, type=_ErrorBody).error.message
    except msgspec.MsgspecError:
        return excerpt(body)


def excerpt(body: bytes) -> str:
    """What an error message quotes of a body it could not use: its first 200 bytes, as text."""
    return body[:200].decode("utf-8", "replace")
