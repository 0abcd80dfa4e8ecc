"""The routing line put together from pieces while batching is the line ``log_event`` writes, and every attempt is counted."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from affinity_proxy.accounting import Accounting
from affinity_proxy.membership import Healthy, Membership
from affinity_proxy.metrics import ProxyMetrics
from affinity_proxy.routing import Decision, Outcome, Route
from telemetry.log_batching import batch_log_writes
from telemetry.logs import configure_logging

ATTEMPTS = [
    (Decision.PINNED, 200, Outcome.COMPLETED, 0.0012345, 'req-"1', "t" * 32),
    (Decision.ROUND_ROBIN, 0, Outcome.CONNECT_FAILED, 0.5, None, None),
    (Decision.RETRY, 503, Outcome.POD_FULL, 0.0, "r", None),
]


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("affinity-proxy", "info")
    text = io.StringIO()
    root.handlers[0].setStream(text)  # type: ignore[attr-defined]  # configure_logging installs a StreamHandler
    yield text
    root.handlers[:] = handlers
    root.setLevel(level)


def test_batched_lines_equal_log_event_lines_and_every_attempt_is_counted(log_text: io.StringIO) -> None:
    membership = Membership(3)
    membership.refresh(["10.0.0.1"], {"10.0.0.1": Healthy("pod-a")})
    member = membership.find("pod-a")
    metrics = ProxyMetrics(membership, {})
    accounting = Accounting(metrics, logging.getLogger("affinity_proxy.route"))
    routes = {decision: Route(decision, member, "pod-a" if decision is Decision.PINNED else None) for decision in Decision}

    async def log_all(batched: bool) -> None:
        batch = batch_log_writes() if batched else None
        for decision, status, outcome, seconds, request_id, trace_id in ATTEMPTS:
            accounting.attempt(routes[decision], status, outcome, seconds, request_id, trace_id)
        if batch is not None:
            batch.detach()

    asyncio.run(log_all(batched=False))
    asyncio.run(log_all(batched=True))
    lines = [re.sub(r'"ts":"[^"]*"', '"ts":"-"', line) for line in log_text.getvalue().splitlines()]
    assert len(lines) == 2 * len(ATTEMPTS)
    assert lines[len(ATTEMPTS) :] == lines[: len(ATTEMPTS)]
    assert '"status":200,"outcome":"completed","duration_ms":1.235,"request_id":"req-\\"1"' in lines[0]
    assert '"status"' not in lines[1], "an attempt without an answer has no status"
    rendered = metrics.render().decode()
    assert 'affinity_proxy_requests_total{decision="pinned",pod="10.0.0.1",status="200"} 2.0' in rendered
    assert 'affinity_proxy_requests_total{decision="round_robin",pod="10.0.0.1",status="0"} 2.0' in rendered
