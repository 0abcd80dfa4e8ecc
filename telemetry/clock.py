"""UTC timestamps as text, formatted once per second: logs and run journals stamp many
events a second, and ``time.strftime`` costs more than the rest of a stamp."""

from __future__ import annotations

import time

_last_second: tuple[int, str] = (-1, "")


def utc_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a Unix second (cached for the last second asked)."""
    global _last_second
    cached = _last_second
    if cached[0] != seconds:
        cached = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return cached[1]
