"""Timestamps as upstream writes them: RFC 3339 UTC with nanoseconds and ``Z``."""

from __future__ import annotations

import time


def now_ns() -> int:
    return time.time_ns()


_last_second: tuple[int, str] = (-1, "")
"""The last whole second formatted: journal entries are stamped many times a second."""


def rfc3339(ns: int) -> str:
    global _last_second
    seconds, fraction = divmod(ns, 1_000_000_000)
    cached = _last_second
    if cached[0] != seconds:
        cached = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{fraction:09d}Z"


def rfc3339_offset(ns: int) -> str:
    """The health endpoint's form: ``+00:00`` instead of ``Z``."""
    return rfc3339(ns)[:-1] + "+00:00"
