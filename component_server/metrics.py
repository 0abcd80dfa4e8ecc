"""Prometheus metrics of one pod, on their own port so scraping never queues behind executions.

Counters and histograms are ``telemetry.metrics.OneThread*``: the event loop updates them
(every execution), with one dict lookup and a plain increment, no lock; the metrics thread
reads a snapshot when scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

from telemetry.metrics import OneThreadCounter, OneThreadHistogram


class PodMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._executions = OneThreadCounter("component_executions", "Component executions by outcome.", ["component", "outcome"], registry=self.registry)
        self._durations = OneThreadHistogram(
            "component_execution_duration_seconds", "Time from admission to answer.", ["component"], buckets=Histogram.DEFAULT_BUCKETS, registry=self.registry
        )
        self.in_flight = Gauge("component_executions_in_flight", "Executions admitted and not yet answered.", registry=self.registry)
        self._rejections = OneThreadCounter("component_rejections", "Executions refused with 503.", ["reason"], registry=self.registry)
        self._callbacks = OneThreadHistogram(
            "component_callback_duration_seconds",
            "Callback round trip, request sent to answer received.",
            ["method"],
            buckets=Histogram.DEFAULT_BUCKETS,
            registry=self.registry,
        )
        self._draining = Gauge("component_server_draining", "1 after SIGTERM, while in-flight executions finish.", registry=self.registry)

    def execution_finished(self, component: str, outcome: str, seconds: float) -> None:
        self._executions.labels(component, outcome).inc()
        self._durations.labels(component).observe(seconds)

    def rejected(self, reason: str) -> None:
        self._rejections.labels(reason).inc()

    def callback_finished(self, method: str, seconds: float) -> None:
        self._callbacks.labels(method).observe(seconds)

    def set_draining(self) -> None:
        self._draining.set(1)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on ``host:port`` from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
