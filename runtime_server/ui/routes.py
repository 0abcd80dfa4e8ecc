"""``/ui/...``: one HTML shell for every page (the modules read the path) and the static files.

The files are read once, at start-up, into memory: a request can only ever get one of
them by its exact name, so no path from a client reaches the file system.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from runtime_server.api.responses import error_response

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
PAGES = ("/ui/", "/ui/runs/{run_id}", "/ui/fleet", "/ui/flows", "/ui/flows/{flow_id}")
PREFIX = "/ui/"
"""Served without the bearer token (runtime_server/api/auth.py): the shell holds no data."""
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every file of ``static/`` by name, with its content type."""
    folder = resources.files(__package__) / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


def ui_routes() -> list[BaseRoute]:
    files = load_static()
    shell, shell_type = files["index.html"]

    async def page(request: Request) -> Response:
        return Response(shell, media_type=shell_type, headers=_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return error_response(404, f"No such file of the UI: {name}")
        body, content_type = files[name]
        return Response(body, media_type=content_type, headers=_HEADERS)

    async def to_root(request: Request) -> Response:
        return RedirectResponse(PREFIX, status_code=308)

    routes: list[BaseRoute] = [Route(path, page, methods=["GET"]) for path in PAGES]
    routes.append(Route("/ui/static/{name}", static, methods=["GET"]))
    routes.append(Route("/ui", to_root, methods=["GET"]))
    return routes
