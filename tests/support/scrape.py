"""Read /metrics endpoints into samples: one endpoint's value, or a whole fleet's to add numbers up."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(url: str) -> list[Sample]:
    text = httpx.get(url, timeout=5.0).text
    return [Sample(sample.name, sample.labels, sample.value) for family in text_string_to_metric_families(text) for sample in family.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@dataclass(frozen=True)
class Snapshot:
    """Samples of each service (runtime, proxy, pod), summed over its endpoints by ``total``."""

    by_service: dict[str, list[Sample]]

    @classmethod
    def take(cls, urls: dict[str, list[str]]) -> Snapshot:
        return cls({service: [sample for url in service_urls for sample in scrape(url)] for service, service_urls in urls.items()})

    def total(self, service: str, name: str, **labels: str) -> float:
        return total(self.by_service[service], name, **labels)

    def names(self, service: str) -> set[str]:
        return {sample.name for sample in self.by_service[service]}


def delta(before: Snapshot, after: Snapshot, service: str, name: str, **labels: str) -> float:
    return after.total(service, name, **labels) - before.total(service, name, **labels)
