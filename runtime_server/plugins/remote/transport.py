"""The one pooled httpx client of a remote plugin and the transport under it."""

from __future__ import annotations

import httpx

from runtime_server.plugins.remote.settings import RemoteSettings


def make_client(settings: RemoteSettings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """Reads are unbounded here: the plugin bounds them itself (idle and total deadlines)."""
    timeout = httpx.Timeout(connect=settings.connect_timeout_seconds, read=None, write=settings.callback_timeout_seconds, pool=settings.connect_timeout_seconds)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=4.0)
    client = httpx.AsyncClient(transport=transport or httpx.AsyncHTTPTransport(limits=limits), timeout=timeout)
    for name in ("accept-encoding", "user-agent", "accept"):
        del client.headers[name]
    return client
