"""The JSON line put together from pieces is the JSON object a user's log tooling expects."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import pytest

from telemetry.logs import JsonLineFormatter

CREATED = 1_700_000_000.25
BASE = {"ts": "2023-11-14T22:13:20.250Z", "level": "info", "service": "affinity-proxy", "event": "routing_decision"}


@pytest.mark.parametrize(
    ("pod_name", "fields", "expected"),
    [
        (None, {}, BASE),
        (None, {"decision": "pinned", "status": 200, "duration_ms": 0.25}, {**BASE, "decision": "pinned", "status": 200, "duration_ms": 0.25}),
        ("proxy-0", {"instance_id": 'a"b\\c'}, {**BASE, "pod": "proxy-0", "instance_id": 'a"b\\c'}),
        ("proxy-0", {"pod": "10.0.0.7:8080", "state": "active"}, {**BASE, "pod": "10.0.0.7:8080", "state": "active"}),
        (None, {"event": "renamed", "service": "other"}, {**BASE, "event": "renamed", "service": "other"}),
    ],
)
def test_event_line_is_the_object_with_fields_after_the_own_keys(
    monkeypatch: pytest.MonkeyPatch, pod_name: str | None, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    if pod_name is None:
        monkeypatch.delenv("POD_NAME", raising=False)
    else:
        monkeypatch.setenv("POD_NAME", pod_name)
    line = JsonLineFormatter("affinity-proxy").event_line(CREATED, "INFO", "routing_decision", fields)
    decoded = msgspec.json.decode(line)
    assert decoded == expected
    assert list(decoded) == list(expected)  # own keys first, in their order, then the fields


def test_a_record_with_an_exception_carries_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("runtime", logging.ERROR, __file__, 1, "step_failed", None, None)
        record.exc_info = sys.exc_info()
    setattr(record, "event_fields", {"step_id": "s1"})  # noqa: B010 - LogRecord declares no event_fields; mypy takes it only this way
    line = msgspec.json.decode(JsonLineFormatter("runtime").format(record))
    assert line["level"] == "error" and line["step_id"] == "s1" and "ValueError: boom" in line["exception"]
