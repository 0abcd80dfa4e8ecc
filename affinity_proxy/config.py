"""The proxy's settings: command-line flags, each with an environment equivalent."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_host_port(text: str, default_port: int | None = None) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    if not port and default_port is not None:
        port = str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return HostPort(host.strip("[]"), int(port))


@dataclass(frozen=True)
class ProxyConfig:
    listen: HostPort
    upstream: HostPort
    dns_server: HostPort | None = None
    metrics_listen: HostPort | None = None
    refresh_seconds: float = 2.0
    probe_timeout_seconds: float = 1.0
    probe_failures: int = 3
    connect_timeout_seconds: float = 2.0
    max_attempts: int = 3
    retry_after_seconds: int = 1
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    replay_bytes: int = 1024 * 1024
    client_idle_seconds: float = 75.0
    pool_idle_seconds: float = 4.0
    """Below uvicorn's 5 s keep-alive, so the proxy never reuses a connection the pod is closing."""
    pool_max_idle: int = 256


# flag, environment variable, field, type, help
_OPTIONS: list[tuple[str, str, str, type, str]] = [
    ("--refresh-seconds", "REFRESH_SECONDS", "refresh_seconds", float, "DNS + health refresh period"),
    ("--probe-timeout", "PROBE_TIMEOUT_SECONDS", "probe_timeout_seconds", float, "timeout of one /health probe"),
    ("--probe-failures", "PROBE_FAILURES", "probe_failures", int, "failed probes in a row before a pod is gone"),
    ("--connect-timeout", "CONNECT_TIMEOUT_SECONDS", "connect_timeout_seconds", float, "TCP connect timeout to a pod"),
    ("--max-attempts", "MAX_ATTEMPTS", "max_attempts", int, "pods tried for one unpinned request"),
    ("--retry-after", "RETRY_AFTER_SECONDS", "retry_after_seconds", int, "Retry-After on 503 answers"),
    ("--max-header-bytes", "MAX_HEADER_BYTES", "max_header_bytes", int, "largest request head accepted (431 above)"),
    ("--max-body-bytes", "MAX_BODY_BYTES", "max_body_bytes", int, "largest request body accepted (413 above)"),
    ("--replay-bytes", "REPLAY_BYTES", "replay_bytes", int, "request bodies up to this size can be retried on another pod"),
    ("--client-idle-seconds", "CLIENT_IDLE_SECONDS", "client_idle_seconds", float, "idle keep-alive timeout towards clients"),
    ("--pool-idle-seconds", "POOL_IDLE_SECONDS", "pool_idle_seconds", float, "idle time before a pooled pod connection is closed"),
    ("--pool-max-idle", "POOL_MAX_IDLE", "pool_max_idle", int, "idle connections kept per pod"),
]


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Flags win over the environment, which wins over defaults."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m affinity_proxy", description="Affinity proxy for Stepflow component-server pods.")
    parser.add_argument("--listen", default=env.get("LISTEN", "0.0.0.0:8080"), help="HOST:PORT to serve (env LISTEN)")
    parser.add_argument("--upstream", default=env.get("UPSTREAM_SERVICE"), help="NAME:PORT of the headless pod service (env UPSTREAM_SERVICE)")
    parser.add_argument("--dns-server", default=env.get("DNS_SERVER"), help="IP[:PORT] to resolve NAME with; system resolver if absent (env DNS_SERVER)")
    parser.add_argument(
        "--metrics-listen",
        default=env.get("METRICS_LISTEN", "0.0.0.0:9090"),
        help="HOST:PORT for /metrics and /membership, 'off' to disable (env METRICS_LISTEN)",
    )
    for flag, variable, name, kind, text in _OPTIONS:
        default = getattr(ProxyConfig, name)
        parser.add_argument(flag, dest=name, type=kind, default=kind(env.get(variable, default)), help=f"{text} (env {variable}, default {default})")
    args = parser.parse_args(argv)
    if not args.upstream:
        parser.error("--upstream NAME:PORT (or UPSTREAM_SERVICE) is required")
    try:
        return ProxyConfig(
            listen=parse_host_port(args.listen),
            upstream=parse_host_port(args.upstream),
            dns_server=parse_host_port(args.dns_server, 53) if args.dns_server else None,
            metrics_listen=None if args.metrics_listen == "off" else parse_host_port(args.metrics_listen),
            **{name: getattr(args, name) for _, _, name, _, _ in _OPTIONS},
        )
    except ConfigError as exc:
        parser.error(str(exc))
        raise
