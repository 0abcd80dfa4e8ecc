"""One JSON object per line on stderr, one line per event: what `kubectl logs` wants.

Call sites say ``log_event(logger, "execution_finished", run_id=..., step_id=...)``;
fields that are None are left out, so every line carries exactly the ids that apply.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import msgspec

from telemetry.clock import utc_second

_encoder = msgspec.json.Encoder()
_FIELDS = "event_fields"


class JsonLineFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._pod = os.environ.get("POD_NAME")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": f"{utc_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "event": record.getMessage(),
        }
        if self._pod:
            line["pod"] = self._pod
        fields = getattr(record, _FIELDS, None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
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
    logging._srcfile = None  # type: ignore[attr-defined]  # no stack walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        present = {key: value for key, value in fields.items() if value is not None}
        logger.log(level, event, extra={_FIELDS: present}, exc_info=exc_info)
