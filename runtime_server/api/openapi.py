"""The OpenAPI document, built from the route table so it cannot drift from it.

Each operation gets its request body, query parameters and the statuses it really
answers, with the shapes a client can rely on (tests/reliability/test_openapi_fuzz.py
fuzzes the running server against this document and checks the answers conform).
Objects stay open (extra fields allowed) where the answer is a compatible superset.
"""

from __future__ import annotations

from typing import Any

_REF = "#/components/schemas/"
_JSON = "application/json"

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string", "minLength": 1}},
    },
    "Flow": {"description": "A v1 flow as an object, or as YAML/JSON text", "type": ["object", "string"]},
    "StoreFlowRequest": {
        "type": "object",
        "required": ["flow"],
        "additionalProperties": False,
        "properties": {"flow": {"$ref": f"{_REF}Flow"}, "dryRun": {"type": "boolean"}},
    },
    "StoreFlowResponse": {
        "type": "object",
        "required": ["flowId", "stored", "diagnostics"],
        "properties": {"flowId": {"type": "string"}, "stored": {"type": "boolean"}, "diagnostics": {"type": "object"}},
    },
    "FlowResponse": {"type": "object", "required": ["flow", "flowId"], "properties": {"flow": {"type": "object"}, "flowId": {"type": "string"}}},
    "CreateRunRequest": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "description": "Exactly one of flowId and flow",
        "properties": {
            "input": {"type": "array", "minItems": 1, "description": "One element per item"},
            "flowId": {"type": "string"},
            "flow": {"$ref": f"{_REF}Flow"},
            "overrides": {"type": "object", "additionalProperties": {"type": "object"}},
            "variables": {"type": "object"},
            "maxConcurrency": {"type": "integer", "minimum": 0},
            "wait": {"type": "boolean"},
        },
    },
    "CreateRunResponse": {
        "type": "object",
        "required": ["runId", "itemCount", "status"],
        "properties": {"runId": {"type": "string"}, "itemCount": {"type": "integer"}, "status": {"$ref": f"{_REF}Status"}, "result": {"type": "object"}},
    },
    "Status": {"type": "string", "enum": ["running", "completed", "failed", "cancelled", "paused"]},
    "RunSummary": {
        "type": "object",
        "required": ["runId", "flowId", "flowName", "status", "items", "createdAt", "completedAt", "rootRunId"],
        "properties": {
            "runId": {"type": "string"},
            "flowId": {"type": "string"},
            "flowName": {"type": ["string", "null"]},
            "status": {"$ref": f"{_REF}Status"},
            "items": {"type": "object"},
            "createdAt": {"type": "string"},
            "completedAt": {"type": ["string", "null"]},
            "rootRunId": {"type": "string"},
            "parentRunId": {"type": "string"},
        },
    },
    "RunList": {"type": "object", "required": ["runs"], "properties": {"runs": {"type": "array", "items": {"$ref": f"{_REF}RunSummary"}}}},
    "Items": {"type": "object", "required": ["itemCount", "items"], "properties": {"itemCount": {"type": "integer"}, "items": {"type": "array"}}},
    "Steps": {"type": "object", "required": ["steps"], "properties": {"steps": {"type": "object"}}},
    "Events": {"type": "object", "required": ["runId", "status", "events"], "properties": {"runId": {"type": "string"}, "events": {"type": "array"}}},
    "FlowList": {
        "type": "object",
        "required": ["flows", "total"],
        "properties": {"flows": {"type": "array", "items": {"type": "object", "required": ["flowId", "steps"]}}, "total": {"type": "integer"}},
    },
    "Fleet": {
        "type": "object",
        "required": ["proxies", "executions", "countedRuns"],
        "properties": {
            "proxies": {"type": "array", "items": {"type": "object", "required": ["plugin", "url"]}},
            "executions": {"type": "object", "description": "By instance id ('unknown': a pod that did not name itself)"},
            "countedRuns": {"type": "integer"},
        },
    },
    "Health": {"type": "object", "required": ["status", "version", "plugins"], "properties": {"status": {"type": "string"}, "plugins": {"type": "object"}}},
    "Components": {"type": "object", "required": ["components"], "properties": {"components": {"type": "array"}}},
}

_REASONS = {
    400: "Bad request (bad JSON, invalid flow, nested too deeply, bad query parameter)",
    404: "Not found",
    409: "Conflict with the run's state",
    413: "Too large (request body, flow steps, YAML expansion): docs/limits.md",
    415: "Not application/json",
    422: "Valid JSON of the wrong shape (wrong types, unknown fields) or a flow that does not parse",
    429: "Too many runs in flight; see Retry-After",
}


def _ok(schema: str | None, description: str = "OK", media_type: str = _JSON) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {media_type: {"schema": {"$ref": f"{_REF}{schema}"}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ok("Error", _REASONS[status]) for status in statuses}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_RUN = (400, 404)
_BODY = (400, 413, 415, 422)
_PAGE = [_query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9})]

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/health"): {"responses": {"200": _ok("Health")}},
    ("GET", "/components"): {"parameters": [_query("includeSchemas", {"type": "boolean"})], "responses": {"200": _ok("Components")}},
    ("GET", "/flows"): {
        "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), *_PAGE],
        "responses": {"200": _ok("FlowList"), **_errors(400)},
    },
    ("GET", "/fleet"): {"responses": {"200": _ok("Fleet")}},
    ("POST", "/flows"): {"body": "StoreFlowRequest", "responses": {"200": _ok("StoreFlowResponse"), **_errors(*_BODY)}},
    ("GET", "/flows/{flow_id}"): {"responses": {"200": _ok("FlowResponse"), **_errors(400, 404)}},
    ("DELETE", "/flows/{flow_id}"): {"responses": {"200": _ok(None, "Deleted (empty body)"), **_errors(404)}},
    ("POST", "/runs"): {
        "body": "CreateRunRequest",
        "responses": {"200": _ok("CreateRunResponse", "The run ended"), "202": _ok("CreateRunResponse", "Started (wait: false)"), **_errors(*_BODY, 404, 429)},
    },
    ("GET", "/runs"): {
        "parameters": [
            _query("status", {"$ref": f"{_REF}Status"}),
            _query("flowName", {"type": "string"}),
            _query("rootRunId", {"type": "string"}),
            _query("parentRunId", {"type": "string"}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000}),
            *_PAGE,
        ],
        "responses": {"200": _ok("RunList"), **_errors(400)},
    },
    ("GET", "/runs/{run_id}"): {"responses": {"200": _ok("RunSummary"), **_errors(*_RUN)}},
    ("DELETE", "/runs/{run_id}"): {"responses": {"200": _ok(None, "Deleted (empty body)"), **_errors(*_RUN, 409)}},
    ("GET", "/runs/{run_id}/items"): {
        "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 100_000}), *_PAGE],
        "responses": {"200": _ok("Items"), **_errors(*_RUN)},
    },
    ("GET", "/runs/{run_id}/steps"): {"responses": {"200": _ok("Steps"), **_errors(*_RUN)}},
    ("GET", "/runs/{run_id}/flow"): {"responses": {"200": _ok("FlowResponse"), **_errors(*_RUN)}},
    ("GET", "/runs/{run_id}/events"): {
        "responses": {
            "200": {
                "description": "The journal as JSON, or an SSE stream with Accept: text/event-stream",
                "content": {_JSON: {"schema": {"$ref": f"{_REF}Events"}}, "text/event-stream": {"schema": {"type": "string"}}},
            },
            **_errors(*_RUN),
        }
    },
    ("POST", "/runs/{run_id}/cancel"): {"responses": {"200": _ok("RunSummary"), **_errors(*_RUN, 409)}},
}


def _operation(method: str, path: str, summary: str) -> dict[str, Any]:
    details = OPERATIONS.get((method, path), {"responses": {"200": _ok(None)}})
    path_parameters = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}} for part in path.split("/") if part.startswith("{")]
    operation: dict[str, Any] = {"summary": summary, "parameters": path_parameters + details.get("parameters", []), "responses": details["responses"]}
    if "body" in details:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": {"$ref": f"{_REF}{details['body']}"}}}}
    return operation


def openapi_document(routes: list[tuple[str, str, str]]) -> dict[str, Any]:
    """``routes`` are (method, path under /api/v1, summary)."""
    paths: dict[str, Any] = {}
    for method, path, summary in routes:
        paths.setdefault(f"/api/v1{path}", {})[method.lower()] = _operation(method, path, summary)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stepflow-compatible runtime", "version": "0.9.0", "description": "A superset of the Stepflow 0.9 REST API."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
