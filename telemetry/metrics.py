"""Prometheus counters and histograms for the services' hot paths: only an event loop
updates them, so they need no lock per update (docs/decisions.md)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _CountChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """One count per bucket, not cumulative; the last is past every bound (+Inf)."""
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount: Prometheus's "le"
        self.total += amount


class _OneThreadMetric(Collector):
    """Children by label values, made on first use; collected into a family when scraped."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry | None) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        if not labelnames:
            self.labels()  # an unlabelled metric is exported from the start, at zero
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            self._add(family, list(values), child)
        yield family

    def _new_child(self) -> Any: ...
    def _family(self) -> Metric:
        raise NotImplementedError

    def _add(self, family: Any, values: list[str], child: Any) -> None: ...


class OneThreadCounter(_OneThreadMetric):
    """prometheus-client's Counter for metrics touched on one thread only (an event loop's hot path).

    ``Counter.inc`` takes a lock and ``Histogram.observe`` a lock and a bucket search in
    Python: ~0.4 and ~1.2 µs, several times per run or request (docs/decisions.md). Here a
    child is a plain number; the scrape (on the metrics server's thread) reads a snapshot.
    ``cell`` makes each child: anything with ``inc(amount)`` and ``value`` (the proxy's are compiled).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
        *,
        cell: Callable[[], Any] = _CountChild,
    ) -> None:
        self._cell = cell
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def _new_child(self) -> Any:
        return self._cell()

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: CounterMetricFamily, values: list[str], child: _CountChild) -> None:
        family.add_metric(values, child.value)


class OneThreadHistogram(_OneThreadMetric):
    """prometheus-client's Histogram for one thread, as ``OneThreadCounter`` (``cell(bounds)``: ``observe``, ``counts``, ``total``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
        cell: Callable[[tuple[float, ...]], Any] = _HistogramChild,
    ) -> None:
        self._cell = cell
        self._bounds = tuple(sorted(float(bound) for bound in buckets if bound != float("inf")))
        self._bucket_names = [*map(floatToGoString, self._bounds), "+Inf"]
        super().__init__(name, documentation, labelnames, registry)

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)

    def _new_child(self) -> Any:
        return self._cell(self._bounds)

    def _family(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: HistogramMetricFamily, values: list[str], child: _HistogramChild) -> None:
        family.add_metric(values, list(zip(self._bucket_names, accumulate(child.counts), strict=True)), child.total)
