"""Prometheus metrics of the proxy.

Per-request numbers (requests by decision, pod and status; time to a pod's first byte)
are ``OneThread*`` metrics, without a lock per update (the proxy is one event loop).
Gauges (in-flight, pool sizes, members by state) are read from the live tables when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from affinity_proxy.membership import Membership, State
from affinity_proxy.tallies import Count, Histogram
from telemetry.metrics import OneThreadCounter, OneThreadHistogram

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
        counts = dict.fromkeys(State, 0)
        for member in self._membership.members.values():
            counts[member.state] += 1
            in_flight.add_metric([member.address, member.instance_id], member.in_flight)
        for state, count in counts.items():
            members.add_metric([state.value], count)
        for instance_id, pool in self._pools.items():
            idle.add_metric([pool.host, instance_id], pool.idle)
            opened.add_metric([pool.host, instance_id], pool.open)
        yield from (in_flight, members, idle, opened)


class ProxyMetrics:
    def __init__(self, membership: Membership, pools: Mapping[str, PodPool]) -> None:
        self.registry = CollectorRegistry()
        self._requests = OneThreadCounter(  # its cells compiled (tallies.py): accounting updates them with a C call
            "affinity_proxy_requests", "Routed requests by decision, pod and status", ["decision", "pod", "status"], registry=self.registry, cell=Count
        )
        self._first_byte = OneThreadHistogram(
            "affinity_proxy_upstream_first_byte_seconds",
            "From sending to a pod to its response head",
            ["pod"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
            cell=Histogram,
        )
        self._refreshes = Counter("affinity_proxy_discovery_refreshes", "Discovery rounds completed", registry=self.registry)
        self._failures = Counter("affinity_proxy_discovery_failures", "Failed DNS lookups and health probes", ["kind"], registry=self.registry)
        self.registry.register(_LiveTables(membership, pools))

    def request_done(self, decision: str, pod: str, status: int) -> None:
        self.request_counter(decision, pod, status).inc()

    def request_counter(self, decision: str, pod: str, status: int) -> Count:
        """The counter of requests by (decision, pod, status), to keep and ``inc()`` (accounting.py)."""
        counter: Count = self._requests.labels(decision, pod, str(status))
        return counter

    def first_byte_histogram(self, pod: str) -> Histogram:
        """The histogram of one pod's time to its first byte, to keep and ``observe(seconds)`` (accounting.py)."""
        histogram: Histogram = self._first_byte.labels(pod)
        return histogram

    def discovery_refreshed(self) -> None:
        self._refreshes.inc()

    def discovery_failure(self, kind: str) -> None:
        self._failures.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
