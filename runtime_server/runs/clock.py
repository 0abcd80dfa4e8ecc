"""Timestamps as upstream writes them: RFC 3339 UTC with nanoseconds and ``Z``."""

from __future__ import annotations

import time

from telemetry.clock import utc_second


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{utc_second(seconds)}.{fraction:09d}Z"


def rfc3339_offset(ns: int) -> str:
    """The health endpoint's form: ``+00:00`` instead of ``Z``."""
    return rfc3339(ns)[:-1] + "+00:00"
