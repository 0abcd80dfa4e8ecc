"""Prometheus metrics of one pod, on their own port so scraping never queues behind executions.

Label children are looked up once per label value (``telemetry.metrics.Children``): the
hot path pays one dict lookup and one increment, not prometheus-client's label validation.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from telemetry.metrics import Children


class PodMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._executions = Children(Counter("component_executions", "Component executions by outcome.", ["component", "outcome"], registry=self.registry))
        self._durations = Children(Histogram("component_execution_duration_seconds", "Time from admission to answer.", ["component"], registry=self.registry))
        self.in_flight = Gauge("component_executions_in_flight", "Executions admitted and not yet answered.", registry=self.registry)
        self._rejections = Children(Counter("component_rejections", "Executions refused with 503.", ["reason"], registry=self.registry))
        self._callbacks = Children(Histogram("component_callback_duration_seconds", "Callback round trip, request sent to answer received.", ["method"], registry=self.registry))
        self._draining = Gauge("component_server_draining", "1 after SIGTERM, while in-flight executions finish.", registry=self.registry)

    def execution_finished(self, component: str, outcome: str, seconds: float) -> None:
        self._executions[component, outcome].inc()
        self._durations[component,].observe(seconds)

    def rejected(self, reason: str) -> None:
        self._rejections[reason,].inc()

    def callback_finished(self, method: str, seconds: float) -> None:
        self._callbacks[method,].observe(seconds)

    def set_draining(self) -> None:
        self._draining.set(1)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on ``host:port`` from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
