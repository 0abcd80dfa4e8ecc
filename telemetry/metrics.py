"""Prometheus label children looked up once, for the services' hot paths.

``metric.labels(...)`` validates and looks up its arguments on every call, which costs
more than the ``inc()`` or ``observe()`` that follows it on every step or execution.
"""

from __future__ import annotations

from typing import Any


class Children(dict[tuple[str, ...], Any]):
    """A labelled metric's children by their label values: ``children["ok", "x"].inc()``;
    each child is made by ``labels()`` the first time its values are asked for."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self._metric = metric

    def __missing__(self, values: tuple[str, ...]) -> Any:
        child = self[values] = self._metric.labels(*values)
        return child
