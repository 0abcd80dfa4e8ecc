"""When an execution has waited too long: past its total deadline, or its SSE stream silent
for the idle limit while no callback answer of ours is pending.

The plugin checks every execution in flight a few times a second (``TICK_SECONDS``) instead of
arming a timer per execution that each stream event would move: ``asyncio.timeout`` cost the
runtime ~9 µs of CPU per three-step run, and more on streams, where each event moved it
(docs/benchmarks.md). A deadline is therefore noticed up to one tick late. Pure: the clock
comes in as numbers; the plugin's ticker cancels what ``overdue`` names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable

TICK_SECONDS = 0.1


class Watch:
    """One execution's limits and what its stream has done so far."""

    __slots__ = ("deadline", "idle", "quiet_since", "answers", "task", "cancelling", "expired")

    def __init__(self, deadline: float, idle: float, task: asyncio.Task[object] | None = None) -> None:
        self.deadline = deadline
        self.idle = idle
        self.quiet_since: float | None = None
        """Since when the stream has been silent; None while silence does not count (no stream yet)."""
        self.answers: Collection[object] = ()
        """The stream's callback answers of ours in flight: the pod waits for them, so its silence is expected."""
        self.task = task
        self.cancelling = task.cancelling() if task is not None else 0
        """Cancellations already requested when the watch began: only a later one of ours is a timeout."""
        self.expired: str | None = None
        """``"total"`` or ``"idle"`` once the ticker has cancelled the task for it."""

    def heard(self, now: float) -> None:
        """The stream said something (or our last answer went out): silence counts from now."""
        self.quiet_since = now

    def overdue(self, now: float) -> str | None:
        if now >= self.deadline:
            return "total"
        if self.quiet_since is not None and not self.answers and now >= self.quiet_since + self.idle:
            return "idle"
        return None


def overdue(watches: Iterable[Watch], now: float) -> list[tuple[Watch, str]]:
    """The watches past a limit at ``now`` that have not expired yet, with the limit each passed."""
    found = []
    for watch in watches:
        if watch.expired is None:
            reason = watch.overdue(now)
            if reason is not None:
                found.append((watch, reason))
    return found
