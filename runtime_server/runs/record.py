"""A run as the API reports it: summary, items, per-step status, and the event journal.

The engine mutates a live record; stores keep finished ones. ``to_state``/``from_state``
are the storage form (plain JSON), separate from the API views in ``views.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec

from runtime_server.flow.results import Failed, from_wire, to_wire
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


JournalEntry = tuple[int | str, str, int | None, str | None, int | None, str | None, dict[str, Any] | None]
"""(time, kind, item_index, step_id, attempt, status, error): time in ns as recorded, or the
formatted time of a run read back from storage. Every run writes them on its hot path and
few are ever read: a tuple and a clock reading cost a fifth of a ``RunEvent`` with its time
formatted, which ``events()`` makes when asked."""


@dataclass
class StepState:
    component: str
    status: str = "blocked"
    outcome: Any = PENDING


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
    status: str = "running"
    created_ns: int = field(default_factory=now_ns)
    completed_ns: int | None = None
    item_outcomes: list[Any] = field(default_factory=list)
    item_completed_ns: list[int | None] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    changed: asyncio.Event | None = None

    def __post_init__(self) -> None:
        if not self.item_outcomes:
            self.item_outcomes = [PENDING] * len(self.inputs)
            self.item_completed_ns = [None] * len(self.inputs)

    def record_event(
        self, kind: str, item_index: int | None = None, step_id: str | None = None, attempt: int | None = None, status: str | None = None, error: dict[str, Any] | None = None
    ) -> None:
        self.journal.append((now_ns(), kind, item_index, step_id, attempt, status, error))
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def events(self, start: int = 0) -> list[RunEvent]:
        """The journal from entry ``start`` on."""
        return [
            RunEvent(seq, rfc3339(at) if isinstance(at, int) else at, kind, item_index, step_id, attempt, status, error)
            for seq, (at, kind, item_index, step_id, attempt, status, error) in enumerate(self.journal[start:], start)
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

    def to_state(self) -> dict[str, Any]:
        return {
            "runId": self.run_id, "flowId": self.flow_id, "flowName": self.flow_name, "inputs": self.inputs,
            "steps": {key: [s.component, s.status, None if s.outcome is PENDING else to_wire(s.outcome), s.outcome is PENDING] for key, s in self.steps.items()},
            "rootRunId": self.root_run_id, "parentRunId": self.parent_run_id, "overrides": self.overrides,
            "traceId": self.trace_id, "status": self.status, "createdNs": self.created_ns, "completedNs": self.completed_ns,
            "items": [None if outcome is PENDING else to_wire(outcome) for outcome in self.item_outcomes],
            "itemCompletedNs": self.item_completed_ns,
            "events": self.events(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RunRecord":
        steps = {key: StepState(c, s, PENDING if pending else from_wire(o)) for key, (c, s, o, pending) in state["steps"].items()}
        return cls(
            run_id=state["runId"], flow_id=state["flowId"], flow_name=state["flowName"], inputs=state["inputs"], steps=steps,
            root_run_id=state["rootRunId"], parent_run_id=state["parentRunId"], overrides=state["overrides"],
            trace_id=state["traceId"], status=state["status"], created_ns=state["createdNs"], completed_ns=state["completedNs"],
            item_outcomes=[PENDING if item is None else from_wire(item) for item in state["items"]],
            item_completed_ns=state["itemCompletedNs"],
            journal=[(e.at, e.kind, e.item_index, e.step_id, e.attempt, e.status, e.error) for e in msgspec.convert(state["events"], list[RunEvent])],
        )
