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
from tests.support.processes import REPO_ROOT, ManagedProcess
from tests.support.runtime import remote_plugin_config, start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_proxy

HUB = "127.0.0.60"
DNS_LISTEN = f"{HUB}:5360"
WORKFLOWS = REPO_ROOT / "demo" / "workflows"


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
    """``kind`` pods behind one proxy (service ``name``) and one runtime; proxy and runtime on ``hub``."""

    kind: str
    pod_addresses: list[str]
    proxy_port: int
    runtime_port: int
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    pods: dict[str, ManagedProcess] = field(default_factory=dict)
    hub: str = HUB
    dns_listen: str = DNS_LISTEN

    @property
    def runtime_url(self) -> str:
        return f"http://{self.hub}:{self.runtime_port}"

    def start(self, dns_records: Path) -> Fleet:
        service = f"{self.kind}-{self.proxy_port}.fleet.test"
        records = {service: self.pod_addresses}
        if dns_records.exists():
            records = {**json.loads(dns_records.read_text()), **records}
        write_records(dns_records, records)
        try:
            for address in self.pod_addresses:
                self.pods[address] = start_pod(self.kind, address, self.log_dir)
                self.processes.append(self.pods[address])
            self.processes.append(start_proxy(f"{self.hub}:{self.proxy_port}", f"{service}:8080", self.dns_listen, self.log_dir))
            config = remote_plugin_config(f"http://{self.hub}:{self.proxy_port}", idleTimeoutSeconds=5, totalTimeoutSeconds=20)
            runtime, api = start_runtime_with_text(config, self.hub, self.log_dir, self.runtime_port)
            self.processes.append(runtime)
            wait_plugins_healthy(api, runtime)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log(2000)}" for p in self.processes)


def submit(runtime_url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it."""
    command = [sys.executable, "-m", "runtime_server", "submit", "--url", runtime_url, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
