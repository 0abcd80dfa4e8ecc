"""Prometheus metrics of one pod, on their own port so scraping never queues behind executions.

Label children are looked up once per label value and cached: the hot path pays one
dict lookup and one increment, not prometheus-client's label validation.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class PodMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._executions = Counter("component_executions", "Component executions by outcome.", ["component", "outcome"], registry=self.registry)
        self._durations = Histogram("component_execution_duration_seconds", "Time from admission to answer.", ["component"], registry=self.registry)
        self.in_flight = Gauge("component_executions_in_flight", "Executions admitted and not yet answered.", registry=self.registry)
        self._rejections = Counter("component_rejections", "Executions refused with 503.", ["reason"], registry=self.registry)
        self._callbacks = Histogram("component_callback_duration_seconds", "Callback round trip, request sent to answer received.", ["method"], registry=self.registry)
        self._draining = Gauge("component_server_draining", "1 after SIGTERM, while in-flight executions finish.", registry=self.registry)
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def execution_finished(self, component: str, outcome: str, seconds: float) -> None:
        self._child(self._executions, component, outcome).inc()
        self._child(self._durations, component).observe(seconds)

    def rejected(self, reason: str) -> None:
        self._child(self._rejections, reason).inc()

    def callback_finished(self, method: str, seconds: float) -> None:
        self._child(self._callbacks, method).observe(seconds)

    def set_draining(self) -> None:
        self._draining.set(1)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on ``host:port`` from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
