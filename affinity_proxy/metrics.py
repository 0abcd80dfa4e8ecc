"""Prometheus metrics of the proxy.

Per-request numbers (requests by decision, pod and status; time to a pod's first byte)
are plain counts in dicts, turned into metric families only when scraped: a
prometheus-client Counter or Histogram takes a lock per increment, and the histogram
searches its buckets in Python, ~1.5 µs a request together (docs/decisions.md). Gauges
(in-flight, pool sizes, members by state) are read from the live tables when scraped too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from prometheus_client.registry import Collector

from affinity_proxy.membership import Membership, State

if TYPE_CHECKING:
    from affinity_proxy.upstream import PodPool

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _LiveTables(Collector):
    def __init__(self, membership: Membership, pools: Mapping[str, PodPool]) -> None:
        self._membership = membership
        self._pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily("affinity_proxy_in_flight", "Requests being forwarded to each pod", labels=["pod", "instance_id"])
        members = GaugeMetricFamily("affinity_proxy_members", "Pods known to discovery, by state", labels=["state"])
        idle = GaugeMetricFamily("affinity_proxy_pool_idle_connections", "Idle keep-alive connections per pod", labels=["pod", "instance_id"])
        opened = GaugeMetricFamily("affinity_proxy_pool_open_connections", "Open connections per pod", labels=["pod", "instance_id"])
        counts = {state: 0 for state in State}
        for member in self._membership.members.values():
            counts[member.state] += 1
            in_flight.add_metric([member.address, member.instance_id], member.in_flight)
        for state, count in counts.items():
            members.add_metric([state.value], count)
        for instance_id, pool in self._pools.items():
            idle.add_metric([pool.host, instance_id], pool.idle)
            opened.add_metric([pool.host, instance_id], pool.open)
        yield from (in_flight, members, idle, opened)


class _PerRequestCounts(Collector):
    """Requests and first-byte latencies, counted without locks (the proxy is one thread)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.first_byte: dict[str, tuple[list[int], list[float]]] = {}
        """Per pod: a count per bucket (the last one past every bound), and the sum in a one-item list."""

    def count_request(self, decision: str, pod: str, status: int) -> None:
        key = (decision, pod, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe_first_byte(self, pod: str, seconds: float) -> None:
        counts_and_sum = self.first_byte.get(pod)
        if counts_and_sum is None:
            counts_and_sum = self.first_byte[pod] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        counts, total = counts_and_sum
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        total[0] += seconds

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily("affinity_proxy_requests", "Routed requests by decision, pod and status", labels=["decision", "pod", "status"])
        for (decision, pod, status), count in list(self.requests.items()):
            requests.add_metric([decision, pod, str(status)], count)
        first_byte = HistogramMetricFamily("affinity_proxy_upstream_first_byte_seconds", "From sending to a pod to its response head", labels=["pod"])
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        for pod, (counts, total) in list(self.first_byte.items()):
            first_byte.add_metric([pod], list(zip(bounds, accumulate(counts))), total[0])
        yield from (requests, first_byte)


class ProxyMetrics:
    def __init__(self, membership: Membership, pools: Mapping[str, PodPool]) -> None:
        self.registry = CollectorRegistry()
        self._counts = _PerRequestCounts()
        self.request_done = self._counts.count_request
        self.first_byte = self._counts.observe_first_byte
        self._refreshes = Counter("affinity_proxy_discovery_refreshes", "Discovery rounds completed", registry=self.registry)
        self._failures = Counter("affinity_proxy_discovery_failures", "Failed DNS lookups and health probes", ["kind"], registry=self.registry)
        self.registry.register(self._counts)
        self.registry.register(_LiveTables(membership, pools))

    def discovery_refreshed(self) -> None:
        self._refreshes.inc()

    def discovery_failure(self, kind: str) -> None:
        self._failures.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
