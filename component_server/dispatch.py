"""What a pod does with one decoded JSON-RPC message, as data (no I/O).

Everything but ``components/execute`` is answered here; an execute request becomes an
``ExecuteJob`` that the HTTP shell admits and runs. Status codes follow upstream
(protocol.md §6, §15): handler errors are HTTP 200 with an error object, messages the
pod cannot interpret are HTTP 400 with a bare ``{"error": ...}`` (with the id when there is
one: params that do not decode, a callback method sent to the pod).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from component_server.registry import Component, ComponentServer
from wire_protocol import jsonrpc
from wire_protocol.messages import (
    ComponentInfoParams,
    ComponentInfoResult,
    ExecuteParams,
    InitializeResult,
    ListComponentsResult,
)

_encoder = msgspec.json.Encoder()

ACCEPTED = b'""'
"""Upstream answers notifications and callback answers with 202 and this JSON body."""


class Reply(NamedTuple):
    status: int
    body: bytes


class ExecuteJob(NamedTuple):
    request_id: jsonrpc.RequestId
    params: ExecuteParams
    component: Component


def bare_error(status: int, message: str, code: int = jsonrpc.INVALID_REQUEST) -> Reply:
    """An error about the HTTP message itself: no id to answer to (upstream's shape)."""
    return Reply(status, _encoder.encode({"error": {"code": code, "message": message}}))


def component_not_found(request_id: jsonrpc.RequestId, name: str, server: ComponentServer) -> Reply:
    known = ", ".join(info.component for info in server.infos())
    message = f"Component '{name}' not found (this pod serves: {known})"
    return Reply(200, jsonrpc.failure(request_id, jsonrpc.COMPONENT_NOT_FOUND, message, {"component": name}))


def dispatch(envelope: jsonrpc.Envelope, server: ComponentServer, answer_callback: Callable[[jsonrpc.Envelope], bool]) -> Reply | ExecuteJob:
    if jsonrpc.is_response(envelope):
        if answer_callback(envelope):
            return Reply(202, ACCEPTED)
        return Reply(
            404,
            jsonrpc.failure(
                envelope.id,
                jsonrpc.INVALID_REQUEST,
                f"Response id {envelope.id!r} has no pending request on this pod: "
                "it was already answered, its callback timed out or was cancelled, or the answer reached the wrong pod",
            ),
        )
    if jsonrpc.is_notification(envelope):
        if envelope.method == jsonrpc.INITIALIZED:
            return Reply(202, ACCEPTED)
        return bare_error(400, f"Unsupported notification '{envelope.method}': the only notification a component server takes is 'initialized'")
    return _request(envelope, server)


def _request(envelope: jsonrpc.Envelope, server: ComponentServer) -> Reply | ExecuteJob:
    method, request_id = envelope.method, envelope.id
    assert request_id is not None
    if method not in jsonrpc.KNOWN_METHODS:
        return bare_error(400, f"Unknown method '{method}': expected one of {', '.join(sorted(jsonrpc.KNOWN_METHODS))}")
    try:
        if method == jsonrpc.COMPONENTS_EXECUTE:
            params: ExecuteParams = jsonrpc.decode_params(envelope, ExecuteParams)
            component = server.get(params.component)
            if component is None:
                return component_not_found(request_id, params.component, server)
            return ExecuteJob(request_id, params, component)
        if method == jsonrpc.INITIALIZE:
            return Reply(200, jsonrpc.success(request_id, InitializeResult()))
        if method == jsonrpc.COMPONENTS_LIST:
            return Reply(200, jsonrpc.success(request_id, ListComponentsResult(list(server.infos()))))
        if method in (jsonrpc.COMPONENTS_INFO, jsonrpc.COMPONENTS_INFER_SCHEMA):
            return _describe(envelope, server, method)
    except jsonrpc.ProtocolError as exc:  # params that do not decode: upstream's SDK answers 400 too
        return Reply(400, jsonrpc.failure(request_id, exc.code, str(exc)))
    return Reply(400, jsonrpc.failure(request_id, jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method} is sent by a component server, not to one"))


def _describe(envelope: jsonrpc.Envelope, server: ComponentServer, method: str) -> Reply:
    assert envelope.id is not None
    params: ComponentInfoParams = jsonrpc.decode_params(envelope, ComponentInfoParams)
    component = server.get(params.component)
    if component is None:
        return component_not_found(envelope.id, params.component, server)
    result: Any = ComponentInfoResult(component.info)
    if method == jsonrpc.COMPONENTS_INFER_SCHEMA:
        result = {"output_schema": component.info.output_schema}
    return Reply(200, jsonrpc.success(envelope.id, result))
