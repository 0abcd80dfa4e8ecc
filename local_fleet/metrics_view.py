"""What the fleet's own metrics say about a demo: executions per pod, and affinity.

Read from the Prometheus endpoints the services export (never from logs): pods count
their executions; proxies count requests by routing decision and status.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

POD_EXECUTIONS = "component_executions_total"
PROXY_REQUESTS = "affinity_proxy_requests_total"


@dataclass
class FleetMetrics:
    executions_by_pod: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests_by_proxy: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    pinned_ok: float = 0.0
    pinned_failed: float = 0.0
    instance_gone: float = 0.0
    round_robin: float = 0.0

    def add_pod_sample(self, pod: str, value: float) -> None:
        self.executions_by_pod[pod] += value

    def add_proxy_sample(self, proxy: str, labels: dict[str, str], value: float) -> None:
        self.requests_by_proxy[proxy] += value
        decision, status = labels.get("decision", ""), labels.get("status", "")
        if decision == "pinned":
            if status.startswith("2"):
                self.pinned_ok += value
            else:
                self.pinned_failed += value
        elif decision == "instance_gone":
            self.instance_gone += value
        elif decision in ("round_robin", "retry"):
            self.round_robin += value


def samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                found.append((sample.labels, sample.value))
    return found


def scrape(proxy_urls: list[str], pod_urls: list[str]) -> FleetMetrics:
    metrics = FleetMetrics()
    with httpx.Client(timeout=5.0) as http:
        for url in pod_urls:
            pod = httpx.URL(url).host
            for _, value in samples(http.get(url).text, POD_EXECUTIONS):
                metrics.add_pod_sample(pod, value)
        for url in proxy_urls:
            proxy = httpx.URL(url).host
            for labels, value in samples(http.get(url).text, PROXY_REQUESTS):
                metrics.add_proxy_sample(proxy, labels, value)
    return metrics
