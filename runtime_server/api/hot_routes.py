"""The hottest route straight to its handler, past Starlette's routing and middleware layers.

Every run starts with ``POST /api/v1/runs``; taking it through CORS, two exception layers,
the router and the endpoint wrapper cost ~18 µs of the runtime's ~280 µs CPU per run
(docs/decisions.md, "Runtime: the hot route"). This middleware sits first in the app's
own list and answers such a request itself only when those layers would not change the
answer: no ``Origin`` header (CORS then only adds ``Vary: Origin``, as here) and no
bearer token configured (the app leaves this middleware out then). ``ApiError`` answers
come from the app's own handler; anything else propagates to Starlette's
ServerErrorMiddleware, exactly as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime_server.api.errors import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
_VARY_ORIGIN = (b"vary", b"Origin")


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Endpoint], api_error: ErrorHandler) -> None:
        self._app = app
        self._routes = routes
        self._api_error = api_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" and not scope.get("root_path") else None
        if endpoint is None or any(name == b"origin" for name, _ in scope["headers"]):
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except ApiError as error:
            response = await self._api_error(request, error)

        async def send_varying_by_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), _VARY_ORIGIN]
            await send(message)

        await response(scope, receive, send_varying_by_origin)
