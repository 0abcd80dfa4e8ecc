"""Bounded waits for what a test cannot be told about: poll, and fail naming what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], what: str, seconds: float = 10.0) -> None:
    """Poll ``condition`` every 50 ms until it is true; AssertionError saying ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {seconds} s)")
        time.sleep(0.05)
