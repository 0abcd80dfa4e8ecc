"""Answering a pod's requests (blobs/*, runs/*) with the runtime's ``Callbacks``.

Every request gets an answer, including an unknown method (-32601): upstream stays
silent there and leaves the component waiting forever (protocol.md §15).
"""

from __future__ import annotations

import logging

from runtime_server.plugins.base import CallbackError, Callbacks
from runtime_server.plugins.remote.answers import Callback
from telemetry.logs import log_event
from wire_protocol import jsonrpc
from wire_protocol.messages import PARAMS_BY_METHOD

logger = logging.getLogger(__name__)


async def answer_callback(callbacks: Callbacks, call: Callback) -> bytes:
    """The encoded JSON-RPC response to one callback request."""
    if call.method not in jsonrpc.CALLBACK_METHODS:
        return jsonrpc.failure(call.request_id, jsonrpc.METHOD_NOT_FOUND, f"Method not found: {call.method}")
    try:
        params = jsonrpc.decode_params(call.envelope, PARAMS_BY_METHOD[call.method])
    except jsonrpc.ProtocolError as exc:
        return jsonrpc.failure(call.request_id, exc.code, str(exc))
    try:
        result = await callbacks.handle(call.method, params)
    except CallbackError as exc:
        return jsonrpc.failure(call.request_id, exc.code, exc.message, exc.data)
    except Exception as exc:  # noqa: BLE001 - a handler bug must still answer the pod
        log_event(logger, "callback_handler_crashed", logging.ERROR, request_id=str(call.request_id), method=call.method, error=repr(exc))
        return jsonrpc.failure(call.request_id, jsonrpc.INTERNAL_ERROR, f"Failed to handle method {call.method}")
    return jsonrpc.success(call.request_id, result)
