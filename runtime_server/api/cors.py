"""Permissive CORS (rest-api.md: any origin, method, header), cheap for clients that are not browsers.

Starlette's ``CORSMiddleware`` answers every request that carries an ``Origin``. The
runtime's usual clients (the CLI, SDKs, other services) send none, and for them Starlette
still parses every request header and rewrites the answer's headers only to add
``Vary: Origin``: 7.5 µs of the ~80 a run costs in-process (docs/decisions.md, "Runtime:
CORS"). Here that case appends the one header to the answer instead.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime_server.api.request_headers import header

VARY_ORIGIN = (b"vary", b"Origin")
"""The answer to a request without ``Origin`` still varies with it: a cache must not give it to a browser."""


class PermissiveCors:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._for_browsers = CORSMiddleware(app, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or header(scope, b"origin") is not None:
            await self._for_browsers(scope, receive, send)
            return

        async def send_varying_with_origin(message: Message) -> None:
            if message["type"] == "http.response.start":  # a second Vary line adds to the first (RFC 9110 §5.3)
                message["headers"] = [*message.get("headers", ()), VARY_ORIGIN]
            await send(message)

        await self._app(scope, receive, send_varying_with_origin)
