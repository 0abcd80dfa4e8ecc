"""Run one component on one input and turn whatever happens into a JSON-RPC answer.

Every failure a component can cause (bad input, an exception, a lost callback, an
output that is not JSON) becomes an error response naming the problem; only
cancellation escapes, so the HTTP shell can tell a dropped client from a failure.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from component_server.context import Context
from component_server.registry import Component
from wire_protocol import jsonrpc
from wire_protocol.messages import ExecuteParams, ExecuteResult

Outcome = Literal["success", "error", "cancelled"]


class Answer(NamedTuple):
    body: bytes
    """The JSON-RPC response to the execute request."""
    outcome: Outcome
    error: str | None = None


def _failed(request_id: jsonrpc.RequestId, message: str) -> Answer:
    """Upstream's shape for anything a component does wrong: -32003, data {}."""
    text = f"Component execution failed: {message}"
    return Answer(jsonrpc.failure(request_id, jsonrpc.EXECUTION_ERROR, text, {}), "error", text)


async def execute(component: Component, request_id: jsonrpc.RequestId, params: ExecuteParams, context: Context | None) -> Answer:
    try:
        value = component.parse_input(params.input)
    except msgspec.ValidationError as exc:
        return _failed(request_id, f"invalid input for {component.name}: {exc}")
    try:
        args = (value, context) if component.takes_context else (value,)
        output = await component.function(*args) if component.is_async else component.function(*args)
    except Exception as exc:  # noqa: BLE001 - any component error is reported, never crashes the pod
        return _failed(request_id, str(exc) or type(exc).__name__)
    try:
        return Answer(jsonrpc.success(request_id, ExecuteResult(output=output)), "success")
    except (TypeError, ValueError, OverflowError) as exc:
        return _failed(request_id, f"{component.name} returned a value that is not JSON: {exc}")
