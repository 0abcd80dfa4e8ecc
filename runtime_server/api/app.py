"""The starlette application: routes, JSON errors for everything, lifespan of the runtime."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runtime_server.api import fleet, flows, misc, runs
from runtime_server.api.auth import BearerTokenMiddleware
from runtime_server.api.cors import PermissiveCors
from runtime_server.api.openapi import openapi_document
from runtime_server.api.responses import ApiError, error_response, json_response
from runtime_server.runs.durable_store import StoreUnavailable
from runtime_server.runs.rows import RunRefused
from runtime_server.runtime import NotReady, Runtime
from runtime_server.ui.routes import ui_routes
from telemetry.logs import log_event

logger = logging.getLogger(__name__)

ROUTES: list[tuple[str, str, Any, str]] = [  # the router tries them in order: the busiest first
    ("POST", "/runs", runs.create_run, "Run a stored (flowId) or inline (flow) flow; wait=false answers 202 at once"),
    ("GET", "/runs", runs.list_runs, "Run summaries, newest first, paged (limit default 100)"),
    ("GET", "/runs/{run_id}", runs.get_run, "Run details"),
    ("DELETE", "/runs/{run_id}", runs.delete_run, "Delete a finished run"),
    ("GET", "/runs/{run_id}/items", runs.get_items, "Per-item results, paged (limit default 1000)"),
    ("GET", "/runs/{run_id}/steps", runs.get_steps, "Per-step status and results"),
    ("GET", "/runs/{run_id}/flow", runs.get_run_flow, "The flow of a run"),
    ("GET", "/runs/{run_id}/events", runs.get_events, "The run's event journal; SSE with Accept: text/event-stream"),
    ("POST", "/runs/{run_id}/cancel", runs.cancel_run, "Cancel a running run (execution really stops)"),
    ("GET", "/health", misc.health, "Liveness, with each plugin's health"),
    ("GET", "/components", misc.list_components, "Components of every plugin"),
    ("GET", "/flows", flows.list_flows, "Stored flows by name, paged (limit default 100); an extension"),
    ("POST", "/flows", flows.store_flow, "Validate and store a flow; its id is its content hash"),
    ("GET", "/flows/{flow_id}", flows.get_flow, "A stored flow in normalised form"),
    ("DELETE", "/flows/{flow_id}", flows.delete_flow, "Delete a stored flow"),
    ("GET", "/fleet", fleet.fleet, "Each configured proxy's membership view and executions per pod (docs/ui.md); an extension"),
]


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    if "limit" in error.extra:  # operators tune limits from these lines
        log_event(logger, "limit_exceeded", logging.WARNING, limit=error.extra["limit"], status=error.status, path=request.url.path, error=error.message)
    return error_response(error.status, error.message, error.headers, **error.extra)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return error_response(404, f"No such endpoint: {request.method} {request.url.path} (see /api/v1/openapi.json)")
    if error.status_code == 405:
        return error_response(405, f"Method {request.method} is not allowed on {request.url.path}", dict(error.headers or {}))
    return error_response(error.status_code, str(error.detail))


async def _unavailable(request: Request, error: Exception) -> Response:
    """The store cannot be used now: nothing was created, try again (the reason names the database, never its password)."""
    return error_response(503, f"The runtime's store is unavailable: {error}", {"Retry-After": "1"})


async def _refused(request: Request, error: Exception) -> Response:
    """The database refused the run's data (not an outage): retrying the same request cannot help."""
    return error_response(422, str(error))


async def _crash(request: Request, error: Exception) -> Response:
    log_event(logger, "request_failed", logging.ERROR, path=request.url.path, error=repr(error))
    return error_response(500, f"Internal error while handling {request.method} {request.url.path}: {type(error).__name__}: {error}")


def create_app(runtime: Runtime, shutdown_grace_seconds: float = 0.0) -> Starlette:
    document = openapi_document([(method, path, summary) for method, path, _, summary in ROUTES])

    async def openapi(request: Request) -> Response:
        return json_response(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.drain(shutdown_grace_seconds)
            await runtime.close()

    middleware = [Middleware(PermissiveCors)]
    token = os.environ.get("STEPFLOW_API_TOKEN")
    if token:
        middleware.append(Middleware(BearerTokenMiddleware, token=token))
    routes: list[BaseRoute] = [Route(f"/api/v1{path}", handler, methods=[method]) for method, path, handler, _ in ROUTES]
    routes.append(Route("/api/v1/openapi.json", openapi, methods=["GET"]))
    routes.extend(ui_routes())
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            NotReady: _unavailable,
            StoreUnavailable: _unavailable,
            RunRefused: _refused,
            Exception: _crash,
        },
    )
    app.state.runtime = runtime
    app.state.execution_tally = fleet.ExecutionTally()
    return app
