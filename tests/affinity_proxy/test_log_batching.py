"""The proxy's batched log lines: the same JSON line as telemetry's log_event, in order, levels honoured."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from affinity_proxy.log_batching import batch_log_writes
from telemetry.logs import configure_logging, log_event

FIELDS = {"decision": "round_robin", "instance_id": "pod-1", "status": 200, "duration_ms": 0.25, "request_id": None}


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, asyncio.AbstractEventLoop]]:
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    loop = asyncio.new_event_loop()
    configure_logging("affinity-proxy")
    out = io.StringIO()
    logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]
    try:
        yield out, loop
    finally:
        loop.close()
        logging.getLogger().handlers[:], _ = saved
        logging.getLogger().setLevel(saved[1])


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_hot_path_lines_match_log_event_and_wait_for_the_flush(captured: tuple[io.StringIO, asyncio.AbstractEventLoop]) -> None:
    out, loop = captured
    stream = batch_log_writes(loop)
    assert stream is not None
    route = logging.getLogger("affinity_proxy.route")
    log_event(route, "routing_decision", **FIELDS)
    stream.log_event(route, "routing_decision", **FIELDS)
    assert out.getvalue() == ""  # batched: nothing written before the flush
    stream.flush_now()
    slow, fast = _lines(out)
    for line in (slow, fast):
        del line["ts"]
    assert fast == slow == {"level": "info", "service": "affinity-proxy", "event": "routing_decision", **{k: v for k, v in FIELDS.items() if v is not None}}


def test_hot_path_lines_honour_the_logger_level(captured: tuple[io.StringIO, asyncio.AbstractEventLoop]) -> None:
    out, loop = captured
    stream = batch_log_writes(loop)
    assert stream is not None
    route = logging.getLogger("affinity_proxy.route")
    stream.log_event(route, "debug_only", logging.DEBUG, a=1)
    stream.log_event(route, "refused", logging.WARNING, a=2)
    stream.flush_now()
    assert [(line["event"], line["level"]) for line in _lines(out)] == [("refused", "warning")]
