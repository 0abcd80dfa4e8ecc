"""A fleet on loopback for proxy tests: DNS server, pods on 127.0.0.41-49:8080, the proxy on 127.0.0.40."""

from __future__ import annotations

import importlib.util
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_fleet.dns_server import write_records
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import REPO_ROOT, ManagedProcess, python_process

NAME = "component-server.stepflow-demo.svc.cluster.local"
PROXY_HOST = "127.0.0.40"
POD_ADDRESSES = [f"127.0.0.{n}" for n in range(41, 44)]
"""The shared fleet's pods."""
FRESH_ADDRESSES = [f"127.0.0.{n}" for n in range(44, 48)]
"""Pods of fleets that tests change (the last one is for scaling up): never the shared fleet's,
which may still be up while these tests run."""
ODD_ADDRESSES = ["127.0.0.48", "127.0.0.49"]
REFRESH_SECONDS = 0.3
_ports = itertools.count(0)

POD_KINDS = ["upstream"] + (["ours"] if importlib.util.find_spec("component_server.demo") else [])


@dataclass
class Fleet:
    kind: str
    workdir: Path
    records: Path
    proxy: ManagedProcess
    proxy_url: str
    metrics_url: str
    pods: dict[str, ManagedProcess] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    others: list[ManagedProcess] = field(default_factory=list)

    def start_pod(self, address: str, in_dns: bool = True) -> ManagedProcess:
        self.pods[address] = start_pod(self.kind, address, self.workdir)
        if in_dns:
            self.set_dns([*self.dns, address])
        return self.pods[address]

    def start_odd_pod(self, address: str, mode: str, in_dns: bool = True, pause: float = 1.0) -> ManagedProcess:
        script = str(REPO_ROOT / "tests" / "affinity_proxy" / "odd_pod.py")
        pod = python_process(f"odd-{mode}-{address}", [script, "--host", address, "--port", str(POD_PORT), "--mode", mode, "--pause", str(pause)], self.workdir)
        pod.start().wait_healthy(f"http://{address}:{POD_PORT}/health")
        self.pods[address] = pod
        if in_dns:
            self.set_dns([*self.dns, address])
        return pod

    def set_dns(self, addresses: list[str]) -> None:
        self.dns = list(addresses)
        write_records(self.records, {NAME: self.dns})

    def membership(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.proxy_url}/proxy/membership", timeout=5).json()["members"]

    def member(self, address: str) -> dict[str, Any]:
        live = [m for m in self.membership() if m["address"] == address and m["state"] != "gone"]
        return live[0] if live else {}

    def wait_until(self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            members = self.membership()
            if condition(members):
                return members
            if time.monotonic() > deadline:
                raise AssertionError(f"membership never got there: {members}")
            time.sleep(0.05)

    def active(self) -> set[str]:
        return {m["address"] for m in self.membership() if m["state"] == "active"}

    def proxy_log_lines(self, event: str) -> list[str]:
        time.sleep(0.2)  # the proxy writes its log lines in 50 ms batches
        return [line for line in self.proxy.log(tail=10_000_000).splitlines() if f'"event":"{event}"' in line]

    def stop(self) -> None:
        for process in [self.proxy, *self.pods.values(), *self.others]:
            process.stop()


def start_fleet(kind: str, workdir: Path, pod_addresses: list[str], extra_args: list[str] | None = None) -> Fleet:
    offset = next(_ports)
    dns_port, proxy_port, metrics_port = 15340 + offset, 18080 + offset, 19080 + offset
    records = workdir / "records.json"
    write_records(records, {NAME: []})
    dns = python_process(
        f"dns-{dns_port}", ["-m", "local_fleet.dns_server", "--listen", f"{PROXY_HOST}:{dns_port}", "--records", str(records)], workdir
    ).start()
    proxy = python_process(
        f"proxy-{proxy_port}",
        [
            "-m",
            "affinity_proxy",
            "--listen",
            f"{PROXY_HOST}:{proxy_port}",
            "--upstream",
            f"{NAME}:{POD_PORT}",
            "--dns-server",
            f"{PROXY_HOST}:{dns_port}",
            "--metrics-listen",
            f"{PROXY_HOST}:{metrics_port}",
            "--refresh-seconds",
            str(REFRESH_SECONDS),
            "--probe-timeout",
            "0.5",
            *(extra_args or []),
        ],
        workdir,
    )
    fleet = Fleet(kind, workdir, records, proxy, f"http://{PROXY_HOST}:{proxy_port}", f"http://{PROXY_HOST}:{metrics_port}", others=[dns])
    try:
        for address in pod_addresses:
            fleet.start_pod(address)
        proxy.start().wait_healthy(f"{fleet.proxy_url}/health")
        fleet.wait_until(lambda members: len([m for m in members if m["state"] == "active"]) == len(pod_addresses))
    except BaseException:
        fleet.stop()
        raise
    return fleet


@pytest.fixture(scope="module", params=POD_KINDS)
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three pods of one kind behind the proxy, shared by the tests that leave it as they found it."""
    started = start_fleet(request.param, tmp_path_factory.mktemp(f"fleet-{request.param}"), POD_ADDRESSES)
    yield started
    started.stop()


@pytest.fixture
def fresh_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Three upstream pods for a test that kills, adds or removes pods."""
    started = start_fleet("upstream", tmp_path, FRESH_ADDRESSES[:3])
    yield started
    started.stop()
