"""Batched log lines (the proxy's and the runtime's): the same JSON line as log_event, in order, levels honoured, none lost."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry.log_batching import FLUSH_SECONDS, batch_log_writes
from telemetry.logs import configure_logging, log_event, send_events_to

FIELDS: dict[str, Any] = {"decision": "round_robin", "instance_id": "pod-1", "status": 200, "duration_ms": 0.25, "request_id": None}


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, asyncio.AbstractEventLoop]]:
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    loop = asyncio.new_event_loop()
    configure_logging("affinity-proxy")
    out = io.StringIO()
    logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]  # configure_logging installs a StreamHandler first
    try:
        yield out, loop
    finally:
        send_events_to(None)
        loop.close()
        logging.getLogger().handlers[:], _ = saved
        logging.getLogger().setLevel(saved[1])


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_lines_past_logging_match_lines_through_it_and_wait_for_the_flush(captured: tuple[io.StringIO, asyncio.AbstractEventLoop]) -> None:
    out, loop = captured
    stream = batch_log_writes()
    assert stream is not None
    route = logging.getLogger("affinity_proxy.route")

    async def log_both_then_wait() -> None:
        route.info("routing_decision", extra={"event_fields": {k: v for k, v in FIELDS.items() if v is not None}})  # through logging's handler
        log_event(route, "routing_decision", **FIELDS)  # past it, into the batch
        assert out.getvalue() == ""  # batched: nothing written before the flush
        await asyncio.sleep(FLUSH_SECONDS * 3)

    loop.run_until_complete(log_both_then_wait())
    slow, fast = _lines(out)
    for line in (slow, fast):
        del line["ts"]
    assert fast == slow == {"level": "info", "service": "affinity-proxy", "event": "routing_decision", **{k: v for k, v in FIELDS.items() if v is not None}}


def test_lines_outside_the_event_loop_and_after_detach_go_straight_out(captured: tuple[io.StringIO, asyncio.AbstractEventLoop]) -> None:
    out, loop = captured
    stream = batch_log_writes()
    assert stream is not None
    runtime = logging.getLogger("runtime_server")
    log_event(runtime, "runtime_starting")
    assert [line["event"] for line in _lines(out)] == ["runtime_starting"]

    async def log_while_serving() -> None:
        log_event(runtime, "run_finished")

    loop.run_until_complete(log_while_serving())
    assert len(_lines(out)) == 1  # waiting for a timer of a loop that has stopped
    stream.detach()
    log_event(runtime, "runtime_stopped")
    assert [line["event"] for line in _lines(out)] == ["runtime_starting", "run_finished", "runtime_stopped"]
    assert logging.getLogger().handlers[0].stream is out  # type: ignore[attr-defined]  # configure_logging installs a StreamHandler first


def test_hot_path_lines_honour_the_logger_level(captured: tuple[io.StringIO, asyncio.AbstractEventLoop]) -> None:
    out, _ = captured
    stream = batch_log_writes()
    assert stream is not None
    route = logging.getLogger("affinity_proxy.route")
    log_event(route, "debug_only", logging.DEBUG, a=1)
    log_event(route, "refused", logging.WARNING, a=2)
    stream.flush_now()
    assert [(line["event"], line["level"]) for line in _lines(out)] == [("refused", "warning")]
