"""A whole fleet on loopback for end-to-end tests: DNS, pods, affinity proxy, runtime.

Addresses are this suite's own: DNS, proxy and runtime on 127.0.0.60, pods on
127.0.0.61-69 (port 8080). Everything is a real process; ``stop`` ends all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local_fleet.dns_server import write_records
from tests.support.pods import start_pod
from tests.support.processes import REPO_ROOT, ManagedProcess, python_process

HUB = "127.0.0.60"
DNS_PORT = 5360
WORKFLOWS = REPO_ROOT / "demo" / "workflows"


def runtime_config(url: str, **plugin_options: Any) -> str:
    options = "".join(f"    {key}: {value}\n" for key, value in plugin_options.items())
    return (
        "plugins:\n  builtin:\n    type: builtin\n"
        f"  k8s_components:\n    type: stepflow\n    url: \"{url}\"\n{options}"
        "routes:\n  \"/python/{*component}\":\n    - plugin: k8s_components\n  \"/{*component}\":\n    - plugin: builtin\n"
    )


def start_runtime(config_yaml: str, port: int, log_dir: Path, host: str = HUB) -> ManagedProcess:
    config = log_dir / f"runtime-{port}.yml"
    config.write_text(config_yaml)
    runtime = python_process(f"runtime-{port}", ["-m", "runtime_server", "--config", str(config), "--host", host, "--port", str(port), "--metrics-port", "0"], log_dir)
    runtime.start().wait_healthy(f"http://{host}:{port}/api/v1/health")
    return runtime


def start_proxy(port: int, service: str, log_dir: Path, host: str = HUB, dns_server: str = f"{HUB}:{DNS_PORT}") -> ManagedProcess:
    """Our affinity proxy on ``host:port`` for ``service:8080``, refreshing membership every 0.5 s."""
    proxy = python_process(
        f"proxy-{port}",
        ["-m", "affinity_proxy", "--listen", f"{host}:{port}", "--upstream", f"{service}:8080", "--dns-server", dns_server, "--metrics-listen", "off", "--refresh-seconds", "0.5"],
        log_dir,
    )
    proxy.start().wait_healthy(f"http://{host}:{port}/health")
    return proxy


def wait_plugin_healthy(runtime_url: str, runtime: ManagedProcess, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(f"{runtime_url}/api/v1/health").json()["plugins"]["k8s_components"]["healthy"]:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the runtime's stepflow plugin never initialized:\n{runtime.log()}")


def wait_terminal(runtime_url: str, run_ids: list[str], seconds: float) -> list[dict[str, Any]]:
    """Every run's details once it is no longer running; fails naming the first run still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    runs: list[dict[str, Any]] = []
    with httpx.Client(base_url=runtime_url) as client:
        for run_id in run_ids:
            while (run := client.get(f"/api/v1/runs/{run_id}").json())["status"] == "running":
                assert time.monotonic() < deadline, f"run {run_id} still running"
                time.sleep(0.05)
            runs.append(run)
    return runs


@dataclass
class Fleet:
    """``kind`` pods behind one proxy (service ``name``) and one runtime."""

    kind: str
    pod_addresses: list[str]
    proxy_port: int
    runtime_port: int
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    pods: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def runtime_url(self) -> str:
        return f"http://{HUB}:{self.runtime_port}"

    def start(self, dns_records: Path) -> "Fleet":
        service = f"{self.kind}-{self.proxy_port}.fleet.test"
        records = {service: self.pod_addresses}
        if dns_records.exists():
            records = {**json.loads(dns_records.read_text()), **records}
        write_records(dns_records, records)
        try:
            for address in self.pod_addresses:
                self.pods[address] = start_pod(self.kind, address, self.log_dir)
                self.processes.append(self.pods[address])
            self.processes.append(start_proxy(self.proxy_port, service, self.log_dir))
            config = runtime_config(f"http://{HUB}:{self.proxy_port}", idleTimeoutSeconds=5, totalTimeoutSeconds=20)
            self.processes.append(start_runtime(config, self.runtime_port, self.log_dir))
            self.wait_plugin_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_plugin_healthy(self, seconds: float = 15.0) -> None:
        wait_plugin_healthy(self.runtime_url, self.processes[-1], seconds)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log(2000)}" for p in self.processes)


def start_dns(log_dir: Path, listen: str = f"{HUB}:{DNS_PORT}") -> tuple[ManagedProcess, Path]:
    records = log_dir / "dns-records.json"
    write_records(records, {})
    dns = python_process("dns", ["-m", "local_fleet.dns_server", "--listen", listen, "--records", str(records)], log_dir)
    dns.start()
    time.sleep(0.3)
    if not dns.alive():
        raise RuntimeError(f"DNS server did not start:\n{dns.log()}")
    return dns, records


def submit(runtime_url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it."""
    command = [sys.executable, "-m", "runtime_server", "submit", "--url", runtime_url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
