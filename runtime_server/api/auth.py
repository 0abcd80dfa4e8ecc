"""Optional bearer-token check (``STEPFLOW_API_TOKEN``): everything but health and the UI's shell needs it.

The UI's pages and scripts (``/ui/...``) hold no data: a browser cannot send a bearer
token when it opens a page, so the page asks for the token and sends it on every API call.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from runtime_server.api.responses import error_response

OPEN_PATHS = frozenset({"/api/v1/health", "/ui"})
OPEN_PREFIX = "/ui/"


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIX)


class BearerTokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _open(scope["path"]):
            scheme, _, supplied = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(supplied.strip(), self._expected):
                response = error_response(401, "Missing or wrong bearer token: send 'Authorization: Bearer <STEPFLOW_API_TOKEN>'")
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)
