"""The cells of the proxy's per-request metrics, compiled with the code that updates them.

``telemetry.metrics``' children are interpreted: a call of ``inc`` or ``observe`` from the
compiled accounting costs ~1.5k and ~2k instructions (a Python frame), about 5% of a
request. These are the same cells as native classes, so the call is a C call; the
scrape reads them as it reads ``telemetry.metrics``' own (``value``; ``counts``, ``total``).
"""

from __future__ import annotations

from bisect import bisect_left


class Count:
    """A labelled counter's value."""

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Histogram:
    """A labelled histogram's buckets: one count per bucket, not cumulative, the last past every bound (+Inf)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # the first bound >= amount: Prometheus's "le"
        self.total += amount
