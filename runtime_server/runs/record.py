"""A run as the API reports it: summary, items, per-step status, and the event journal.

The engine mutates a live record. The journal is the run's write-ahead log: a durable store
(``runs/durable_store.py``) writes each entry, and a run read back is rebuilt from its
entries (``runs/replay.py``), so nothing else of a run needs storing as it changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from runtime_server.flow.results import Failed
from runtime_server.runs.clock import now_ns, rfc3339

TERMINAL = frozenset({"completed", "failed", "cancelled"})
PENDING = object()


class RunEvent(msgspec.Struct, omit_defaults=True, rename="camel"):
    """A journal entry as the API shows it (and as finished runs are stored)."""

    seq: int
    at: str
    kind: str
    """run_started, step_started, step_succeeded, step_failed, step_retried, item_completed, run_completed."""
    item_index: int | None = None
    step_id: str | None = None
    attempt: int | None = None
    status: str | None = None
    error: dict[str, Any] | None = None
    instance_id: str | None = None
    """The pod that answered (``Stepflow-Instance-Id``): on step_succeeded/failed the last attempt's, on
    step_retried the failed attempt's; on run_recovered, the runtime that took the run."""
    callbacks: dict[str, int] | None = None
    """On a step's end: the callbacks its last execution made (blobs/put, runs/submit, ...), by method;
    they went over the stream of, and were answered to, the pod in ``instance_id``."""


JournalEntry = tuple[int, str, int | None, str | None, int | None, str | None, dict[str, Any] | None, str | None, Any, dict[str, int] | None]
"""(time ns, kind, item_index, step_id, attempt, status, error, instance_id, outcome, callbacks). Every
run writes them on its hot path and few are ever read: a tuple and a clock reading cost a
fifth of a ``RunEvent`` with its time formatted, which ``events()`` makes when asked.
``outcome`` (a step's or an item's result, ``PENDING`` elsewhere) is what recovery needs;
the API's events leave it out. ``callbacks``: on a step's end, the callbacks its execution made, by method."""

RUN_KINDS = ("run_started", "run_recovered", "step_started", "step_retried", "step_succeeded", "step_failed", "item_completed", "run_completed")


@dataclass
class StepState:
    component: str
    status: str = "blocked"
    outcome: Any = PENDING
    attempt: int = 0
    instance_id: str | None = None
    started_ns: int | None = None
    completed_ns: int | None = None
    callbacks: dict[str, int] | None = None


@dataclass
class RunRecord:
    run_id: str
    flow_id: str
    flow_name: str | None
    inputs: list[Any]
    steps: dict[str, StepState]
    root_run_id: str
    parent_run_id: str | None = None
    overrides: dict[str, Any] | None = None
    trace_id: str | None = None
    variables: dict[str, Any] | None = None
    max_concurrency: int | None = None
    submit_key: str | None = None
    """For a run a component submitted: which execution asked, so a re-run of that step after a
    recovery gets the same run back (``Runtime.submit``)."""
    owner: str | None = None
    """The runtime (orchestrator id) that runs it."""
    status: str = "running"
    created_ns: int = field(default_factory=now_ns)
    completed_ns: int | None = None
    item_outcomes: list[Any] = field(default_factory=list)
    item_completed_ns: list[int | None] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    changed: asyncio.Event | None = None
    sink: Callable[[RunRecord], None] | None = None
    """Told of every new journal entry (a durable store's writer); None in memory."""
    counts: dict[str, int] | None = None
    """Item counts as stored, for a run listed without its journal."""

    def __post_init__(self) -> None:
        if not self.item_outcomes:
            self.item_outcomes = [PENDING] * len(self.inputs)
            self.item_completed_ns = [None] * len(self.inputs)

    def record_event(
        self,
        kind: str,
        item_index: int | None = None,
        step_id: str | None = None,
        attempt: int | None = None,
        status: str | None = None,
        error: dict[str, Any] | None = None,
        instance_id: str | None = None,
        outcome: Any = PENDING,
        callbacks: dict[str, int] | None = None,
    ) -> None:
        self.journal.append((now_ns(), kind, item_index, step_id, attempt, status, error, instance_id, outcome, callbacks))
        if self.sink is not None:
            self.sink(self)
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def events(self, start: int = 0) -> list[RunEvent]:
        """The journal from entry ``start`` on."""
        return [
            RunEvent(seq, rfc3339(at), kind, item_index, step_id, attempt, status, error, instance_id, callbacks)
            for seq, (at, kind, item_index, step_id, attempt, status, error, instance_id, _, callbacks) in enumerate(self.journal[start:], start)
        ]

    @property
    def journal_complete(self) -> bool:
        """The run's last entry is in: nothing more will be recorded."""
        return self.finished and bool(self.journal) and self.journal[-1][1] == "run_completed"

    def next_change(self) -> asyncio.Event:
        """An event set at the next journal entry: what a live event stream waits on."""
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def item_counts(self) -> dict[str, int]:
        if self.counts is not None:
            return self.counts
        counts = {"total": len(self.inputs), "completed": 0, "running": 0, "failed": 0, "cancelled": 0}
        for index, outcome in enumerate(self.item_outcomes):
            if outcome is PENDING:
                counts["cancelled" if self.status == "cancelled" else "running"] += 1
            else:
                counts[self.item_status(index)] += 1
        return counts

    def item_status(self, index: int) -> str:
        outcome = self.item_outcomes[index]
        if outcome is PENDING:
            return "cancelled" if self.status == "cancelled" else "running"
        return "failed" if isinstance(outcome, Failed) else "completed"
