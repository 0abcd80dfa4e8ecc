"""Where each part of the local fleet listens: the cluster's topology on loopback.

Pods get distinct loopback addresses on the same port, as pods get distinct IPs in a
cluster; a DNS server on loopback answers the headless service name with them. Runtime
replicas do the same: runtime 0 on 127.0.0.3, runtime 1 on 127.0.0.4, ..., same ports.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME = "component-server.stepflow-demo.svc.cluster.local"
POD_PORT = 8080
METRICS_PORT = 9090
MAX_PODS = 10
MAX_RUNTIMES = 8
"""Runtimes take 127.0.0.3 to 127.0.0.10, the addresses below the first pod's."""


@dataclass(frozen=True)
class Topology:
    pods: int = 3
    proxies: int = 2
    runtimes: int = 1
    dns_address: str = "127.0.0.2"
    dns_port: int = 5353
    runtime_address: str = "127.0.0.3"
    runtime_port: int = 7840
    first_pod_host: int = 11
    first_proxy_host: int = 21
    """Last byte of pod 0's and proxy 0's loopback address (tests move the fleet elsewhere)."""

    def pod_address(self, index: int) -> str:
        """Pod 0 is 127.0.0.11, pod 1 is 127.0.0.12, ... (at most 10 pods: .11 to .20)."""
        if not 0 <= index < MAX_PODS:
            raise ValueError(f"pod index {index} out of range 0..{MAX_PODS - 1}")
        return f"127.0.0.{self.first_pod_host + index}"

    def proxy_address(self, index: int) -> str:
        """Proxy 0 is 127.0.0.21, proxy 1 is 127.0.0.22, ..."""
        return f"127.0.0.{self.first_proxy_host + index}"

    def proxy_url(self, index: int) -> str:
        return f"http://{self.proxy_address(index)}:{POD_PORT}"

    def proxy_metrics_url(self, index: int) -> str:
        return f"http://{self.proxy_address(index)}:{METRICS_PORT}/metrics"

    def pod_metrics_url(self, index: int) -> str:
        return f"http://{self.pod_address(index)}:{METRICS_PORT}/metrics"

    def runtime_address_of(self, index: int) -> str:
        """Runtime 0 is ``runtime_address`` (127.0.0.3), runtime 1 the next address (127.0.0.4), ..."""
        if not 0 <= index < MAX_RUNTIMES:
            raise ValueError(f"runtime index {index} out of range 0..{MAX_RUNTIMES - 1}")
        prefix, last = self.runtime_address.rsplit(".", 1)
        return f"{prefix}.{int(last) + index}"

    def runtime_url_of(self, index: int) -> str:
        return f"http://{self.runtime_address_of(index)}:{self.runtime_port}"

    def runtime_metrics_url_of(self, index: int) -> str:
        return f"http://{self.runtime_address_of(index)}:{METRICS_PORT}/metrics"

    @property
    def runtime_urls(self) -> list[str]:
        return [self.runtime_url_of(index) for index in range(self.runtimes)]

    @property
    def runtime_url(self) -> str:
        return self.runtime_url_of(0)

    @property
    def runtime_metrics_url(self) -> str:
        return self.runtime_metrics_url_of(0)

    @property
    def dns_server(self) -> str:
        return f"{self.dns_address}:{self.dns_port}"
