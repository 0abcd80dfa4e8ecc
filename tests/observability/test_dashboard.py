"""The Grafana dashboard asks only for series the services really export.

Every panel's PromQL is parsed (promql-parser) and each metric name it selects must be a
series name of a live runtime, proxy or pod: read from their /metrics families, so a
histogram offers only ``_bucket``/``_sum``/``_count`` and a counter only ``_total``, even
before anything was counted. The dashboard ships as a ConfigMap Grafana's sidecar finds; the alerts
docs/operations.md suggests pass the same check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import render
from tests.deploy.tools import find_tool
from tests.observability.conftest import ObservedFleet
from tests.support.processes import REPO_ROOT
from tests.support.scrape import scrape

DASHBOARD = REPO_ROOT / "k8s" / "base" / "grafana-dashboard.json"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target."""
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
TOPICS = ("throughput", "latency", "error", "per pod", "pinned", "retries", "in flight", "rejection", "discovery failures")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, also those inside collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in panels(dashboard) for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from its syntax tree (Grafana's range variables filled in)."""
    for variable, value in GRAFANA_RANGES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    names: set[str] = set()
    promql_parser.walk(promql_parser.parse(expr), lambda node: names.add(node.name or "") if isinstance(node, promql_parser.VectorSelector) else None)
    return names


def exported_series(metrics_text: str) -> set[str]:
    """Series names Prometheus stores from this exposition, from the families' types."""
    series: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        series.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
    return series


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_exported_series_follow_prometheus_suffixes() -> None:
    text = "# TYPE a_total counter\n# TYPE b_seconds histogram\n# TYPE c gauge\nc 1\n"
    assert exported_series(text) == {"a_total", "a_created", "b_seconds_bucket", "b_seconds_sum", "b_seconds_count", "b_seconds_created", "c"}
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(x_bucket{a="b"}[$__rate_interval]))) / on() group_left sum(y)') == {"x_bucket", "y"}


@pytest.fixture(scope="module")
def exported(observed: ObservedFleet) -> dict[str, set[str]]:
    """Series names of each live service (runtime, proxy, pod)."""
    return {service: set().union(*(exported_series(httpx.get(url, timeout=5).text) for url in urls)) for service, urls in observed.metrics_urls().items()}


def test_every_panel_query_names_a_metric_the_services_export(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    queried = {name for _, expr in expressions(dashboard) for name in metric_names(expr)}
    assert queried, "no query found in the dashboard"
    assert sorted(queried - set().union(*exported.values())) == []
    for service, names in exported.items():
        assert queried & names, f"the dashboard shows nothing of the {service}"


def documented_alerts() -> list[str]:
    """The PromQL column of the alerts table in docs/operations.md (``\\|`` is a table-escaped ``|``)."""
    section = OPERATIONS.read_text().split("## Alerts worth setting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    return [re.search(r"`([^`]+)`", line.split(" | ")[1]).group(1).replace("\\|", "|") for line in rows]  # type: ignore[union-attr]  # every row of the alerts table has a backticked query


def test_the_documented_alerts_parse_and_name_exported_series(exported: dict[str, set[str]]) -> None:
    alerts = documented_alerts()
    assert len(alerts) >= 8, alerts
    named = {name for expr in alerts for name in metric_names(expr)}
    assert sorted(named - set().union(*exported.values()) - PROMETHEUS_OWN) == []


def test_every_panel_has_a_query_and_the_topics_are_covered(dashboard: dict[str, Any]) -> None:
    data_panels = [panel for panel in panels(dashboard) if panel["type"] != "row"]
    assert all(panel.get("targets") for panel in data_panels), [panel["title"] for panel in data_panels if not panel.get("targets")]
    assert len({panel["id"] for panel in panels(dashboard)}) == len(panels(dashboard)), "panel ids must be unique"
    text = " ".join(f"{panel['title']} {panel.get('description', '')}" for panel in panels(dashboard)).lower().replace("-", " ")
    assert [topic for topic in TOPICS if topic not in text] == []


def test_no_run_ids_in_labels(observed: ObservedFleet) -> None:
    """Low cardinality: no label carries a run, step, trace or request id."""
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|[0-9a-f]{32}")
    for urls in observed.metrics_urls().values():
        for url in urls:
            for sample in scrape(url):
                assert not {"run_id", "step_id", "trace_id", "request_id"} & set(sample.labels), sample
                assert not any(uuid.search(value) for value in sample.labels.values()), sample


def test_the_dashboard_ships_as_a_configmap_grafana_finds() -> None:
    for kustomization in ("base", "overlays/local", "overlays/kind"):
        config_maps = [
            obj
            for obj in render(find_tool("kubectl"), kustomization)
            if obj["kind"] == "ConfigMap" and obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        ]
        assert len(config_maps) == 1, kustomization
        assert json.loads(config_maps[0]["data"]["grafana-dashboard.json"]) == json.loads(Path(DASHBOARD).read_text())
