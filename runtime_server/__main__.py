"""``python -m runtime_server --config PATH --host HOST --port PORT [--metrics-port P]``;
``python -m runtime_server submit ...`` is the CLI client."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn
from prometheus_client import start_http_server

from runtime_server.config import DEFAULT_METRICS_PORT, DEFAULT_PORT, ConfigError, load_settings
from runtime_server.routing import RouteConfigError
from serving.gc_tuning import tune_gc
from serving.open_files import open_file_limit, raise_open_file_limit
from serving.protocol import ServerProtocol
from telemetry.log_batching import batch_log_writes
from telemetry.logs import configure_logging, log_event

logger = logging.getLogger("runtime_server")


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runtime_server", description="Stepflow-compatible orchestration server")
    parser.add_argument("--config", help="YAML/JSON config file (env STEPFLOW_CONFIG); default: builtins only")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a pod serves on its pod IP; --host/HOST narrows it
    parser.add_argument("--port", type=int, default=int(os.environ.get("STEPFLOW_PORT", DEFAULT_PORT)))
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", DEFAULT_METRICS_PORT)), help="Prometheus port; 0 turns metrics off"
    )
    parser.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        default=float(os.environ.get("SHUTDOWN_GRACE_SECONDS", 20)),
        help="on SIGTERM, how long runs in flight may take to finish before the rest is left to a peer (env SHUTDOWN_GRACE_SECONDS)",
    )
    parser.add_argument(
        "--orchestrator-id", help="this runtime's id, which owns its runs in a durable store (env STEPFLOW_ORCHESTRATOR_ID; default the pod name)"
    )
    return parser.parse_args(argv)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the runtime the moment SIGTERM (or Ctrl-C) arrives: readiness goes
    false and new runs are refused at once, and the grace period counts from then. When it has
    stopped, ``stopped`` runs before uvicorn raises the signal again to exit with it (after which
    nothing of this process runs: batched log lines would be lost)."""

    def __init__(self, config: uvicorn.Config, begin_draining: Callable[[], None], stopped: Callable[[], None]) -> None:
        super().__init__(config)
        self._begin_draining = begin_draining
        self._stopped = stopped

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._begin_draining()
        super().handle_exit(sig, frame)

    async def _serve(self, sockets: list[socket.socket] | None = None) -> None:  # uvicorn's, inside its signal capture
        try:
            await super()._serve(sockets)
        finally:
            self._stopped()


def serve(argv: list[str]) -> int:
    arguments = _arguments(argv)
    configure_logging("runtime")
    raise_open_file_limit()
    from runtime_server.api.app import create_app
    from runtime_server.runtime import Runtime

    try:
        runtime = Runtime(load_settings(arguments.config), arguments.orchestrator_id)
    except (ConfigError, RouteConfigError) as error:
        log_event(logger, "config_invalid", logging.ERROR, error=str(error))
        print(f"runtime_server: invalid configuration: {error}", file=sys.stderr)
        return 2
    if arguments.metrics_port:
        start_http_server(arguments.metrics_port, addr=arguments.host)
    log_event(
        logger,
        "runtime_starting",
        host=arguments.host,
        port=arguments.port,
        metrics_port=arguments.metrics_port,
        plugins=list(runtime.plugins),
        store=runtime.settings.store.type,
        orchestrator_id=runtime.orchestrator_id,
        open_files=open_file_limit(),
    )
    app = create_app(runtime, arguments.shutdown_grace_seconds)
    tune_gc()
    logs = batch_log_writes()
    config = uvicorn.Config(
        app,
        host=arguments.host,
        port=arguments.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=ServerProtocol,
        timeout_graceful_shutdown=arguments.shutdown_grace_seconds,
        proxy_headers=False,
        server_header=False,
    )  # as the pods: no client address is used, no server name given away
    DrainingServer(config, runtime.begin_draining, logs.detach if logs is not None else lambda: None).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["submit"]:
        from runtime_server.cli import main as cli_main

        return cli_main(argv)
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
