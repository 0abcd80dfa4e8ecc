"""One JSON object per line on stderr, one line per event: what `kubectl logs` wants.

Call sites say ``log_event(logger, "execution_finished", run_id=..., step_id=...)``;
fields that are None are left out, so every line carries exactly the ids that apply.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from telemetry.clock import utc_second

_encoder = msgspec.json.Encoder()
_FIELDS = "event_fields"
_OWN_KEYS = frozenset({"ts", "level", "service", "event", "pod"})


class JsonLineFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._pod = os.environ.get("POD_NAME")
        self._service_json = _encoder.encode(service).decode()
        self._pod_json = f',"pod":{_encoder.encode(self._pod).decode()}' if self._pod else ""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, _FIELDS, None) or {}
        if record.exc_info:
            fields = {**fields, "exception": self.formatException(record.exc_info)}
        return self.event_line(record.created, record.levelname, record.getMessage(), fields)

    def event_line(self, created: float, level_name: str, event: str, fields: dict[str, Any]) -> str:
        """The line as text, put together from pieces (a hot path: the proxy writes one per request).

        Keys in order: ts, level, service, event, pod, then the fields; a field named like
        one of the line's own keys replaces it.
        """
        second = int(created)
        ts = f"{utc_second(second)}.{int((created - second) * 1000):03d}Z"
        if not _OWN_KEYS.isdisjoint(fields):
            return self._merged_line(ts, level_name, event, fields)
        head = f'{{"ts":"{ts}","level":"{level_name.lower()}","service":{self._service_json},"event":{_encoder.encode(event).decode()}{self._pod_json}'
        return head + "," + _encoder.encode(fields)[1:].decode() if fields else head + "}"

    def _merged_line(self, ts: str, level_name: str, event: str, fields: dict[str, Any]) -> str:
        line: dict[str, Any] = {"ts": ts, "level": level_name.lower(), "service": self._service, "event": event}
        if self._pod:
            line["pod"] = self._pod
        line.update(fields)
        return _encoder.encode(line).decode()


def configure_logging(service: str, level: str | None = None) -> None:
    """Route every logger (ours, uvicorn's) to one JSON-lines handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "info")).upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def skip_unused_record_fields() -> None:
    """The logging HOWTO's "Optimization" switches, for services that log on their hot path:
    no JSON line reads the caller's frame, thread or process, so records need not gather them."""
    logging._srcfile = None  # no stack walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


EventSink = Callable[[logging.Logger, str, int, dict[str, Any]], None]
_direct_sink: EventSink | None = None
"""Where lines go without the ``logging`` machinery, once ``telemetry.log_batching`` batches them."""


def send_events_to(sink: EventSink | None) -> None:
    global _direct_sink
    _direct_sink = sink


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        present = {key: value for key, value in fields.items() if value is not None}
        if _direct_sink is not None and not exc_info:
            _direct_sink(logger, event, level, present)
        else:
            logger.log(level, event, extra={_FIELDS: present}, exc_info=exc_info)
