"""When to try again: exponential backoff bounded by a count and a deadline (clock injected)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float = 0.05
    factor: float = 2.0
    longest: float = 1.0

    def delay(self, retry: int) -> float:
        """Pause before retry number ``retry`` (1-based)."""
        return min(self.longest, self.first * self.factor ** (retry - 1))


def next_delay(backoff: Backoff, retries_done: int, retries_allowed: int, now: float, deadline: float) -> float | None:
    """The pause before the next try, or None when the count or the deadline is spent."""
    if retries_done >= retries_allowed:
        return None
    pause = backoff.delay(retries_done + 1)
    if now + pause >= deadline:
        return None
    return pause
