"""Health (with each plugin's own health) and the component list of every plugin."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from runtime_server.api.responses import ApiError, json_response
from runtime_server.runs.clock import now_ns, rfc3339_offset
from runtime_server.runtime import Runtime

VERSION = "0.9.0"


async def health(request: Request) -> Response:
    """Healthy (200) once the store takes writes; 503 with the reason while it does not, so a
    readiness probe keeps traffic away from a runtime whose database is away."""
    runtime: Runtime = request.app.state.runtime
    plugins = {}
    for name, plugin in runtime.plugins.items():
        state = plugin.health()
        plugins[name] = {"healthy": state.healthy, **state.detail}
    body = {"status": "healthy", "timestamp": rfc3339_offset(now_ns()), "version": VERSION, "plugins": plugins}
    problem = runtime.problem
    if problem is not None:
        return json_response({**body, "status": "unavailable", "reason": problem}, 503, {"Retry-After": "1"})
    return json_response(body)


async def list_components(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    include_schemas = request.query_params.get("includeSchemas", "true").lower() != "false"
    names = list(runtime.plugins)
    answers = await asyncio.gather(*(runtime.plugins[name].list_components() for name in names), return_exceptions=True)
    components = []
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, BaseException):
            raise ApiError(500, f"plugin {name!r} could not list its components: {answer}")
        for info in answer:
            entry = msgspec.to_builtins(info)
            if not include_schemas:
                entry.pop("input_schema", None)
                entry.pop("output_schema", None)
            components.append(entry)
    components.sort(key=lambda entry: entry["component"])
    return json_response({"components": components})
