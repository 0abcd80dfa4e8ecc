"""The fleet's middle for tests: the loopback DNS server and our affinity proxy as real processes."""

from __future__ import annotations

import time
from pathlib import Path

from local_fleet.dns_server import write_records
from tests.support.processes import ManagedProcess, python_process


def start_dns(log_dir: Path, listen: str, records: dict[str, list[str]] | None = None) -> tuple[ManagedProcess, Path]:
    """``local_fleet.dns_server`` on ``listen`` (UDP) answering ``records``; returns the process
    and its records file, which tests rewrite (``write_records``) to change what it answers."""
    records_path = log_dir / "dns-records.json"
    write_records(records_path, records or {})
    dns = python_process("dns", ["-m", "local_fleet.dns_server", "--listen", listen, "--records", str(records_path)], log_dir)
    dns.start()
    time.sleep(0.3)
    if not dns.alive():
        raise RuntimeError(f"DNS server did not start:\n{dns.log()}")
    return dns, records_path


def start_proxy(
    listen: str, upstream: str, dns_server: str, log_dir: Path, metrics_listen: str = "off", refresh_seconds: float = 0.5, extra_args: list[str] | None = None
) -> ManagedProcess:
    """Our affinity proxy on ``listen`` for ``upstream`` (``service:port``), refreshing membership
    every ``refresh_seconds``; returns once its /health answers."""
    args = [
        "--listen",
        listen,
        "--upstream",
        upstream,
        "--dns-server",
        dns_server,
        "--metrics-listen",
        metrics_listen,
        "--refresh-seconds",
        str(refresh_seconds),
    ]
    proxy = python_process(f"proxy-{listen.replace(':', '-')}", ["-m", "affinity_proxy", *args, *(extra_args or [])], log_dir)
    proxy.start().wait_healthy(f"http://{listen}/health")
    return proxy
