"""The lock-free metrics scrape exactly as prometheus-client's Counter and Histogram would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from telemetry.metrics import OneThreadCounter, OneThreadHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _samples(registry: CollectorRegistry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)


@pytest.mark.parametrize("amounts", [[], [0.0005], [0.001, 0.001, 0.0011], [0.5, 1.0, 1.5, 99.0]])
def test_unlabelled_metrics_match_prometheus_client(amounts: list[float]) -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    counter, histogram = OneThreadCounter("runs_total", "d", registry=ours), OneThreadHistogram("run_seconds", "d", buckets=BUCKETS, registry=ours)
    reference_counter, reference_histogram = Counter("runs_total", "d", registry=reference), Histogram("run_seconds", "d", buckets=BUCKETS, registry=reference)
    for amount in amounts:
        counter.inc()
        histogram.observe(amount)
        reference_counter.inc()
        reference_histogram.observe(amount)
    assert _samples(ours) == _samples(reference)


def test_labelled_metrics_match_prometheus_client() -> None:
    ours, reference = CollectorRegistry(), CollectorRegistry()
    counter = OneThreadCounter("calls", "d", ["plugin", "outcome"], registry=ours)
    histogram = OneThreadHistogram("call_seconds", "d", ["plugin"], buckets=BUCKETS, registry=ours)
    reference_counter = Counter("calls", "d", ["plugin", "outcome"], registry=reference)
    reference_histogram = Histogram("call_seconds", "d", ["plugin"], buckets=BUCKETS, registry=reference)
    for plugin, outcome, seconds in [("a", "success", 0.01), ("a", "success", 0.2), ("b", "failed", 3.0)]:
        counter.labels(plugin, outcome).inc(2)
        histogram.labels(plugin).observe(seconds)
        reference_counter.labels(plugin, outcome).inc(2)
        reference_histogram.labels(plugin).observe(seconds)
    assert _samples(ours) == _samples(reference)


def test_wrong_label_count_is_refused_like_prometheus_client() -> None:
    counter = OneThreadCounter("calls", "d", ["plugin", "outcome"], registry=None)
    with pytest.raises(ValueError):
        counter.labels("only-one")


def test_a_name_registered_twice_is_refused() -> None:
    registry = CollectorRegistry()
    OneThreadCounter("runs_total", "d", registry=registry)
    with pytest.raises(ValueError):
        Counter("runs_total", "d", registry=registry)
