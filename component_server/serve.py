"""Run a ComponentServer as a pod: uvicorn (uvloop + httptools), metrics, graceful drain.

SIGTERM does not stop the listener at once (uvicorn's default): the pod first drains
(``ComponentApp.drain``), still answering health checks, callback answers and refusals,
and only then lets uvicorn shut down. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import msgspec
import uvicorn

from component_server.app import ComponentApp
from component_server.metrics import PodMetrics
from component_server.registry import ComponentServer
from component_server.settings import Settings, new_instance_id
from serving.open_files import open_file_limit, raise_open_file_limit
from serving.protocol import ServerProtocol
from telemetry.logs import configure_logging, log_event, skip_unused_record_fields
from wire_protocol import jsonrpc

logger = logging.getLogger("component_server")


class PodProtocol(ServerProtocol):
    def malformed_request_body(self, message: str) -> bytes:
        """The pod's error shape for requests that are not JSON-RPC at all (as its 404 and 405)."""
        return msgspec.json.encode({"error": {"code": jsonrpc.INVALID_REQUEST, "message": message}})


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: ComponentApp) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        for server in self.servers:
            for bound in server.sockets:
                port = bound.getsockname()[1]
                print(f'{{"port": {port}}}', flush=True)  # subprocess plugins read the port from stdout (protocol.md §11)
                log_event(
                    logger,
                    "pod_started",
                    instance_id=self._app.instance_id,
                    host=self.config.host,
                    port=port,
                    max_concurrency=self._app.admission.limit,
                    open_files=open_file_limit(),
                )
                return

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self._loop is None:
            self.force_exit = self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_task(self._drain_then_exit())  # type: ignore[union-attr]  # the loop is set before a signal can start a drain

    async def _drain_then_exit(self) -> None:
        await self._app.drain()
        self.should_exit = True


def serve(server: ComponentServer, settings: Settings) -> None:
    configure_logging("component-server")
    skip_unused_record_fields()
    raise_open_file_limit()
    metrics = PodMetrics()
    if settings.metrics_port:
        metrics.serve(settings.host, settings.metrics_port)
    app = ComponentApp(server, settings, new_instance_id(settings.pod_name), metrics)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=PodProtocol,
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        timeout_graceful_shutdown=2,
    )
    DrainingServer(config, app).run()
