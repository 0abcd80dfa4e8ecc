"""JSON in and out: msgspec encoding, and errors as ``{"code", "message"}`` with application/json."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from runtime_server.api import limits
from runtime_server.api.errors import ApiError
from runtime_server.api.request_headers import header
from runtime_server.config import ApiLimits
from runtime_server.nulls import without_nulls
from wire_protocol import headers

__all__ = ["ApiError", "decode_body", "error_response", "json_response", "query_int", "read_body"]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200, extra_headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(data), status, headers=extra_headers, media_type=headers.JSON)


def error_response(status: int, message: str, extra_headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"code": status, "message": message, **extra}, status, extra_headers)


async def read_body(request: Request, body_type: type[T]) -> T:
    """Decode a JSON body into ``body_type``: 415 without JSON content type, 413 too large,
    400 bad JSON or nested too deeply, 422 wrong shape (unknown fields included)."""
    if not headers.is_json(header(request.scope, b"content-type")):
        raise ApiError(415, "Expected request with `Content-Type: application/json`")
    api_limits: ApiLimits = request.app.state.runtime.settings.limits
    raw = await _read_limited(request, api_limits)
    try:
        body = decode_body(raw, body_type)
    except msgspec.ValidationError as error:
        raise ApiError(422, f"The request body does not have the expected shape: {error}") from None
    except msgspec.DecodeError as error:
        raise ApiError(400, f"The request body is not valid JSON: {_json_problem(raw, error)}") from None
    except RecursionError:
        raise limits.too_deep("The request body", api_limits) from None
    if limits.could_nest_deeper(raw, api_limits.max_nesting_depth):
        limits.check_depth(msgspec.structs.asdict(body) if isinstance(body, msgspec.Struct) else body, api_limits, "The request body")
    return body


def _json_problem(raw: bytes, error: msgspec.DecodeError) -> str:
    """msgspec's reason, except where it misleads: a lone UTF-16 surrogate escape (``"\\ud800"``,
    half a pair, not a character) is reported as truncated input although the body is whole
    (Python's json, which accepts lone surrogates, reads it)."""
    if "truncated" in str(error):
        try:
            json.loads(raw)
        except (ValueError, RecursionError):  # truncated indeed (or nested past Python's own limit)
            return str(error)
        return "it holds a \\u escape of half a UTF-16 surrogate pair (\\ud800-\\udfff without its other half), which is not a character"
    return str(error)


def decode_body(raw: bytes, body_type: type[T]) -> T:
    """Typed decoding; a body that does not fit is tried once more with its top-level ``null``
    members left out (an explicit null means absent: upstream's clients send them), so the
    fast path stays one typed decode and a required field given as null is reported missing."""
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError:
        data = msgspec.json.decode(raw)
        if not isinstance(data, dict) or None not in data.values():
            raise
        return msgspec.convert(without_nulls(data), body_type)


async def _read_limited(request: Request, api_limits: ApiLimits) -> bytes:
    """The body, refused with 413 by its Content-Length or as soon as it grows past the limit."""
    limits.check_body_size(header(request.scope, b"content-length"), api_limits)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > api_limits.max_request_bytes:
            raise limits.body_too_large(None, api_limits)
        parts.append(chunk)
    return b"".join(parts)


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"query parameter {name} must be between {minimum} and {maximum}, got {value}")
    return value
