"""The OpenAPI document, built from the route table so it cannot drift from it."""

from __future__ import annotations

from typing import Any

_RESPONSES = {
    "200": {"description": "OK"},
    "400": {"description": "Bad request: JSON {code, message}"},
    "404": {"description": "Not found: JSON {code, message}"},
}


def openapi_document(routes: list[tuple[str, str, str]]) -> dict[str, Any]:
    """``routes`` are (method, path under /api/v1, summary)."""
    paths: dict[str, Any] = {}
    for method, path, summary in routes:
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/")
            if part.startswith("{")
        ]
        paths.setdefault(f"/api/v1{path}", {})[method.lower()] = {"summary": summary, "parameters": parameters, "responses": _RESPONSES}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stepflow-compatible runtime", "version": "0.9.0", "description": "A superset of the Stepflow 0.9 REST API."},
        "paths": paths,
    }
