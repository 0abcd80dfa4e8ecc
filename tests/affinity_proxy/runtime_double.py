"""Plays the runtime's part towards pods: execute a component, answer its callbacks.

Answers ``blobs/put`` and ``blobs/get`` like the runtime does and POSTs each answer
back with the ``Stepflow-Instance-Id`` the stream carried, through whatever URL it is
given (the proxy, or a pod directly), recording the status of every answer.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from wire_protocol import headers as wire_headers
from wire_protocol import jsonrpc
from wire_protocol.sse import EventStreamDecoder


@dataclass
class ComponentRun:
    instance_id: str | None
    callback_statuses: list[int] = field(default_factory=list)
    final: dict[str, Any] | None = None


def execute_request(component: str, input_value: Any, request_id: str | None = None) -> bytes:
    params = {"component": component, "input": input_value, "attempt": 1, "observability": {}}
    return jsonrpc.request(request_id or str(uuid.uuid4()), jsonrpc.COMPONENTS_EXECUTE, params)


def blob_id(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


def run_component(
    base_url: str,
    component: str,
    input_value: Any,
    before_callback: Callable[[ComponentRun], None] | None = None,
    timeout: float = 15.0,
) -> ComponentRun:
    blobs: dict[str, Any] = {}
    request_id = str(uuid.uuid4())
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        with client.stream("POST", "/", content=execute_request(component, input_value, request_id), headers=wire_headers.REQUEST_HEADERS) as response:
            run = ComponentRun(response.headers.get(wire_headers.INSTANCE_ID))
            if not wire_headers.is_sse(response.headers.get("content-type")):
                run.final = json.loads(response.read())
                return run
            decoder = EventStreamDecoder()
            for chunk in response.iter_raw():
                for data in decoder.feed(chunk):
                    message = json.loads(data)
                    if "method" in message:
                        if before_callback is not None:
                            before_callback(run)
                        answer = _answer(message, blobs)
                        headers = {**wire_headers.REQUEST_HEADERS, wire_headers.INSTANCE_ID: run.instance_id or ""}
                        run.callback_statuses.append(client.post("/", content=answer, headers=headers).status_code)
                    elif message.get("id") == request_id:
                        run.final = message
    return run


def _answer(message: dict[str, Any], blobs: dict[str, Any]) -> bytes:
    params = message["params"]
    if message["method"] == jsonrpc.BLOBS_PUT:
        identifier = blob_id(params["data"])
        blobs[identifier] = params["data"]
        return jsonrpc.success(message["id"], {"blob_id": identifier})
    if message["method"] == jsonrpc.BLOBS_GET and params["blob_id"] in blobs:
        return jsonrpc.success(message["id"], {"data": blobs[params["blob_id"]], "blob_type": "data"})
    return jsonrpc.failure(message["id"], jsonrpc.SERVER_ERROR, "Failed to get blob")
