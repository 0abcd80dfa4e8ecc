"""The proxy's lock-free per-request counts scrape exactly as prometheus-client's own Counter and Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from affinity_proxy.membership import Membership
from affinity_proxy.metrics import LATENCY_BUCKETS, ProxyMetrics

REQUESTS = [("round_robin", "10.0.0.1", 200), ("round_robin", "10.0.0.1", 200), ("pinned", "10.0.0.2", 202), ("instance_gone", "", 503)]
LATENCIES = [("10.0.0.1", 0.0001), ("10.0.0.1", 0.0005), ("10.0.0.1", 0.0007), ("10.0.0.2", 3.0), ("10.0.0.2", 99.0), ("10.0.0.2", 10.0)]


def _samples(text: bytes, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if line.startswith(prefixes) and "_created" not in line)


def test_requests_and_first_byte_scrape_like_prometheus_client_metrics() -> None:
    ours = ProxyMetrics(Membership(), {})
    reference = CollectorRegistry()
    requests = Counter("affinity_proxy_requests", "x", ["decision", "pod", "status"], registry=reference)
    first_byte = Histogram("affinity_proxy_upstream_first_byte_seconds", "x", ["pod"], buckets=LATENCY_BUCKETS, registry=reference)
    for decision, pod, status in REQUESTS:
        ours.request_done(decision, pod, status)
        requests.labels(decision, pod, str(status)).inc()
    for pod, seconds in LATENCIES:
        ours.first_byte_histogram(pod).observe(seconds)
        first_byte.labels(pod).observe(seconds)
    prefixes = ("affinity_proxy_requests", "affinity_proxy_upstream_first_byte_seconds")
    assert _samples(ours.render(), prefixes) == _samples(generate_latest(reference), prefixes)
    assert 'affinity_proxy_requests_total{decision="round_robin",pod="10.0.0.1",status="200"} 2.0' in ours.render().decode()
