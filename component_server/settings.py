"""Pod configuration from flags and environment (flags win), and the pod's instance id."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_concurrency: int = 64
    """Executions in flight before the pod answers 503 instead of queueing."""
    callback_timeout_seconds: float = 60.0
    """How long a component waits for the runtime to answer one callback."""
    drain_grace_seconds: float = 25.0
    """After SIGTERM, how long in-flight executions get to finish."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body the pod reads; larger ones are answered 413 unread (the proxy's default too)."""
    max_callbacks_per_execution: int = 10_000
    """Callbacks one execution may make; the next one fails the component with a clear error."""
    metrics_port: int = 9090
    """Prometheus endpoint on the same host; 0 turns it off."""
    pod_name: str = "component-server"


def new_instance_id(pod_name: str) -> str:
    """``$POD_NAME-<8 hex>``: unique per process, so a restarted pod never inherits pins."""
    return f"{pod_name}-{os.urandom(4).hex()}"


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, description: str | None = None) -> Settings:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=Settings.host)
    parser.add_argument("--port", type=int, default=Settings.port)
    parser.add_argument("--max-concurrency", type=int, default=int(env.get("MAX_CONCURRENCY", Settings.max_concurrency)))
    parser.add_argument("--callback-timeout-seconds", type=float, default=float(env.get("CALLBACK_TIMEOUT_SECONDS", Settings.callback_timeout_seconds)))
    parser.add_argument("--drain-grace-seconds", type=float, default=float(env.get("DRAIN_GRACE_SECONDS", Settings.drain_grace_seconds)))
    parser.add_argument("--max-body-bytes", type=int, default=int(env.get("MAX_BODY_BYTES", Settings.max_body_bytes)))
    parser.add_argument("--max-callbacks-per-execution", type=int, default=int(env.get("MAX_CALLBACKS_PER_EXECUTION", Settings.max_callbacks_per_execution)))
    parser.add_argument("--metrics-port", type=int, default=int(env.get("METRICS_PORT", Settings.metrics_port)))
    args = parser.parse_args(argv)
    for flag, value in (
        ("--max-concurrency", args.max_concurrency),
        ("--max-body-bytes", args.max_body_bytes),
        ("--max-callbacks-per-execution", args.max_callbacks_per_execution),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    return Settings(
        host=args.host,
        port=args.port,
        max_concurrency=args.max_concurrency,
        callback_timeout_seconds=args.callback_timeout_seconds,
        drain_grace_seconds=args.drain_grace_seconds,
        max_body_bytes=args.max_body_bytes,
        max_callbacks_per_execution=args.max_callbacks_per_execution,
        metrics_port=args.metrics_port,
        pod_name=env.get("POD_NAME") or socket.gethostname(),
    )
