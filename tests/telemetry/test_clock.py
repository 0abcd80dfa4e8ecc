from __future__ import annotations

import logging

import msgspec
import pytest

from runtime_server.runs.clock import rfc3339
from telemetry.clock import utc_second
from telemetry.logs import JsonLineFormatter


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00"),
        (86_399, "1970-01-01T23:59:59"),
        (1_700_000_000, "2023-11-14T22:13:20"),
        (1_700_000_001, "2023-11-14T22:13:21"),
        (1_700_000_000, "2023-11-14T22:13:20"),
    ],
)
def test_utc_second_is_right_whatever_was_asked_before(seconds: int, text: str) -> None:
    assert utc_second(seconds) == text


def test_journal_stamps_keep_nanoseconds() -> None:
    assert rfc3339(1_700_000_000_000_000_007) == "2023-11-14T22:13:20.000000007Z"


def test_a_log_line_is_one_json_object_with_millisecond_utc_time() -> None:
    record = logging.LogRecord("runtime", logging.INFO, __file__, 1, "run_finished", None, None)
    record.created, record.msecs = 1_700_000_000.25, 250.0
    line = msgspec.json.decode(JsonLineFormatter("runtime").format(record))
    assert line["ts"] == "2023-11-14T22:13:20.250Z" and line["event"] == "run_finished" and line["service"] == "runtime"
