"""One local fleet for the observability tests, on this suite's own loopback addresses.

It is ``local_fleet``'s own supervisor (so the runtime takes a bearer token, and every
service serves /metrics on port 9090 as in the cluster): DNS and the runtime on
127.0.0.160, pods on .161-.163, the proxy on .164. Pods run ``header_pod.py``: the demo
pod plus a file of the trace headers each POST carried.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from local_fleet.supervisor import LocalFleet
from local_fleet.topology import Topology
from tests.support.runtime import wait_plugins_healthy

HUB = "127.0.0.160"
TOPOLOGY = Topology(pods=3, proxies=1, dns_address=HUB, dns_port=5353, runtime_address=HUB, runtime_port=8080, first_pod_host=161, first_proxy_host=164)
HEADER_POD = Path(__file__).with_name("header_pod.py")


@dataclass
class ObservedFleet:
    fleet: LocalFleet
    header_log: Path

    @property
    def topology(self) -> Topology:
        return self.fleet.topology

    def metrics_urls(self) -> dict[str, list[str]]:
        """Every /metrics endpoint of the fleet, by service."""
        topology = self.topology
        return {
            "runtime": [topology.runtime_metrics_url],
            "proxy": [topology.proxy_metrics_url(index) for index in range(topology.proxies)],
            "pod": [topology.pod_metrics_url(index) for index in sorted(self.fleet.pods)],
        }

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.topology.runtime_url}/api/v1", headers={"authorization": f"Bearer {self.fleet.api_token}"}, timeout=60)

    def log_dir(self) -> Path:
        return self.fleet.log_dir


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedFleet]:
    work_dir = tmp_path_factory.mktemp("observed-fleet")
    header_log = work_dir / "headers.jsonl"
    fleet = LocalFleet(TOPOLOGY, work_dir, pod_program=[str(HEADER_POD), "--header-log", str(header_log)])
    try:
        fleet.start()
        fleet.wait_routed()
        wait_plugins_healthy(f"{fleet.topology.runtime_url}/api/v1")
        yield ObservedFleet(fleet, header_log)
    finally:
        fleet.stop()
