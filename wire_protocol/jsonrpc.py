"""JSON-RPC 2.0 envelopes, method names and error codes as Stepflow 0.9 uses them.

Messages are decoded in two stages (envelope first, params as ``msgspec.Raw``) so a
router or proxy can classify a message without paying for its payload.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

RequestId: TypeAlias = str | int

# Method names (protocol.md §5). Upstream cannot parse any other name.
INITIALIZE: Final = "initialize"
INITIALIZED: Final = "initialized"
COMPONENTS_LIST: Final = "components/list"
COMPONENTS_INFO: Final = "components/info"
COMPONENTS_EXECUTE: Final = "components/execute"
COMPONENTS_INFER_SCHEMA: Final = "components/infer_schema"
BLOBS_PUT: Final = "blobs/put"
BLOBS_GET: Final = "blobs/get"
RUNS_SUBMIT: Final = "runs/submit"
RUNS_GET: Final = "runs/get"

KNOWN_METHODS: Final = frozenset(
    {
        INITIALIZE,
        INITIALIZED,
        COMPONENTS_LIST,
        COMPONENTS_INFO,
        COMPONENTS_EXECUTE,
        COMPONENTS_INFER_SCHEMA,
        BLOBS_PUT,
        BLOBS_GET,
        RUNS_SUBMIT,
        RUNS_GET,
    }
)
CALLBACK_METHODS: Final = frozenset({BLOBS_PUT, BLOBS_GET, RUNS_SUBMIT, RUNS_GET})
"""Requests a component server sends to the runtime inside an SSE stream."""

# Error codes (protocol.md §12).
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_ERROR: Final = -32000
"""Generic: blob put/get failures, run failures, and our 'pod unavailable, retry elsewhere'."""
COMPONENT_NOT_FOUND: Final = -32001
VALIDATION_ERROR: Final = -32002
EXECUTION_ERROR: Final = -32003
RUNTIME_ERROR: Final = -32004
VALUE_ERROR: Final = -32005
NOT_FOUND: Final = -32011
INVALID_VALUE: Final = -32012


class Error(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Request(msgspec.Struct):
    method: str
    id: RequestId
    params: Any = msgspec.field(default_factory=dict)
    jsonrpc: str = "2.0"


class Notification(msgspec.Struct):
    method: str
    params: Any = msgspec.field(default_factory=dict)
    jsonrpc: str = "2.0"


class Success(msgspec.Struct):
    id: RequestId
    result: Any
    jsonrpc: str = "2.0"


class Failure(msgspec.Struct):
    id: RequestId | None
    error: Error
    jsonrpc: str = "2.0"


Message: TypeAlias = Request | Notification | Success | Failure


class Envelope(msgspec.Struct, omit_defaults=True):
    """Any JSON-RPC object, payloads kept raw until the method or id says what they are."""

    jsonrpc: str | None = None
    id: RequestId | None = None
    method: str | None = None
    params: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: Error | msgspec.UnsetType = msgspec.UNSET


class ProtocolError(ValueError):
    """A message that is not valid JSON-RPC 2.0; carries the code to answer with."""

    def __init__(self, message: str, code: int = INVALID_REQUEST) -> None:
        super().__init__(message)
        self.code = code


_envelope_decoder = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()


def decode_envelope(body: bytes | str) -> Envelope:
    """Decode and check the envelope shape; raise ProtocolError on anything malformed."""
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.ValidationError as exc:  # valid JSON, wrong shape (a batch, a bad id type)
        raise ProtocolError(f"Failed to decode message: {exc}", INVALID_REQUEST) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"Failed to decode message: {exc}", PARSE_ERROR) from None
    if envelope.jsonrpc != "2.0":
        raise ProtocolError('Failed to decode message: "jsonrpc" must be "2.0"')
    if envelope.method is None and envelope.id is None:
        raise ProtocolError("Failed to decode message: neither a request, a notification nor a response")
    if envelope.method is None and (envelope.result is msgspec.UNSET) == (envelope.error is msgspec.UNSET):
        raise ProtocolError("Failed to decode message: a response needs exactly one of result or error")
    return envelope


def is_request(envelope: Envelope) -> bool:
    return envelope.method is not None and envelope.id is not None


def is_notification(envelope: Envelope) -> bool:
    return envelope.method is not None and envelope.id is None


def is_response(envelope: Envelope) -> bool:
    return envelope.method is None


def decode_params(envelope: Envelope, params_type: type[Any]) -> Any:
    """Decode a request's params into its Struct; ProtocolError(-32602) if they do not fit."""
    raw = b"{}" if envelope.params is msgspec.UNSET else envelope.params
    try:
        return msgspec.json.decode(raw, type=params_type)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"Invalid parameters for request {envelope.id}: {exc}", INVALID_PARAMS) from None


def decode_result(envelope: Envelope, result_type: type[Any] = Any) -> Any:
    raw = b"null" if envelope.result is msgspec.UNSET else envelope.result
    return msgspec.json.decode(raw, type=result_type)


def encode(message: Any) -> bytes:
    """Compact JSON of any message or Struct (single line, as SSE framing requires)."""
    return _encoder.encode(message)


def success(request_id: RequestId, result: Any) -> bytes:
    return _encoder.encode(Success(id=request_id, result=result))


def failure(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    return _encoder.encode(Failure(id=request_id, error=Error(code=code, message=message, data=data)))


def request(request_id: RequestId, method: str, params: Any) -> bytes:
    return _encoder.encode(Request(method=method, id=request_id, params=params))
