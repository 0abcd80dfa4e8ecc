"""JSON in and out: msgspec encoding, and errors as ``{"code", "message"}`` with application/json."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from wire_protocol import headers

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def json_response(data: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(data), status, media_type=headers.JSON)


def error_response(status: int, message: str, **extra: Any) -> Response:
    return json_response({"code": status, "message": message, **extra}, status)


async def read_body(request: Request, body_type: type[T]) -> T:
    """Decode a JSON body into ``body_type``: 415 without JSON content type, 400 bad JSON, 422 wrong shape."""
    if not headers.is_json(request.headers.get("content-type")):
        raise ApiError(415, "Expected request with `Content-Type: application/json`")
    raw = await request.body()
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as error:
        raise ApiError(422, f"The request body does not have the expected shape: {error}") from None
    except msgspec.DecodeError as error:
        raise ApiError(400, f"The request body is not valid JSON: {error}") from None


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
