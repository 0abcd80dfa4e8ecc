"""What a recovered run had done, and what each step may still spend: pure, from the journal.

A run read back after a restart (``replay.py``) carries its journal. For every item and step
it tells: finished (its outcome is reused, the step is not run again), interrupted (it was
dispatched and no result came: it runs again with the next attempt number, and the lost
attempt counts against its budget: ``first_budget``), or never started. Budgets continue across restarts: a
step on attempt 2 of 3 gets exactly one more, never a fresh 3.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from runtime_server.flow.model import Step
from runtime_server.flow.results import Failed, failed
from runtime_server.runs.record import PENDING, JournalEntry

TRANSPORT, ON_ERROR_RETRY = "transport", "on_error_retry"
"""Why a step ran again, as the ``status`` of its ``step_retried`` entry: which budget it spent."""


@dataclass
class Interrupted:
    """A step dispatched before the restart with no result journaled."""

    attempt: int
    reruns_used: int = 0
    retries_used: int = 0


@dataclass
class RunResume:
    """Per item: the outcomes of finished steps and the interrupted steps; finished items."""

    finished_steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    interrupted_steps: dict[tuple[int, str], Interrupted] = field(default_factory=dict)
    finished_items: set[int] = field(default_factory=set)

    def item_done(self, item_index: int) -> bool:
        return item_index in self.finished_items

    def restore(self, item_index: int, outcomes: dict[str, Any], step_index: dict[str, int]) -> list[int]:
        """Put the item's finished outcomes into ``outcomes``; the indexes of those steps."""
        finished = self.finished_steps.get(item_index, {})
        outcomes.update(finished)
        return [step_index[step_id] for step_id in finished if step_id in step_index]

    def interrupted(self, item_index: int, step_id: str) -> Interrupted | None:
        """Taken once: a later run of the same step in this process is an ordinary one."""
        return self.interrupted_steps.pop((item_index, step_id), None)


def resume_of(journal: list[JournalEntry]) -> RunResume:
    resume = RunResume()
    for _, kind, item_index, step_id, attempt, status, _, _, outcome, _ in journal:
        if item_index is None:
            continue
        if kind == "item_completed":
            resume.finished_items.add(item_index)
        elif step_id is None:
            continue
        elif kind == "step_started":
            resume.interrupted_steps[(item_index, step_id)] = Interrupted(attempt or 1)
            resume.finished_steps.get(item_index, {}).pop(step_id, None)
        elif kind == "step_retried":
            _count_retry(resume.interrupted_steps.setdefault((item_index, step_id), Interrupted(attempt or 1)), attempt, status)
        elif kind in ("step_succeeded", "step_failed") and outcome is not PENDING:
            resume.interrupted_steps.pop((item_index, step_id), None)
            resume.finished_steps.setdefault(item_index, {})[step_id] = outcome
    return resume


def _count_retry(step: Interrupted, attempt: int | None, reason: str | None) -> None:
    step.attempt = attempt or step.attempt + 1
    if reason == TRANSPORT:
        step.reruns_used += 1
    elif reason == ON_ERROR_RETRY:
        step.retries_used += 1


@dataclass(frozen=True, slots=True)
class Budget:
    """A step's first attempt in this process and what it may spend after it."""

    attempt: int
    reruns_left: int
    """Runs again after a retriable transport failure (the runtime's ``stepAttempts``)."""
    retries_left: int
    """Runs again after a failure, for ``onError: retry``."""
    recovered: str | None = None
    """For an interrupted step: which budget its lost attempt spent (``step_retried``'s status)."""
    interruption: dict[str, Any] | None = None
    exhausted: Failed | None = None
    """Set when the lost attempt was the last one the step had: its outcome, not run again."""


def first_budget(step: Step, step_attempts: int, interrupted: Interrupted | None) -> Budget:
    """The lost attempt is charged to the budget the user set for the step: ``onError: retry``'s
    ``maxAttempts`` when it has one (attempt 2 of 3 lost: exactly one more), else the runtime's
    transport re-runs (``stepAttempts``); with none left the step is not run again."""
    reruns = step_attempts - 1
    retries = step.on_error.max_attempts - 1 if step.on_error.action == "retry" else 0
    if interrupted is None:
        return _fresh(reruns, retries)
    reruns = max(reruns - interrupted.reruns_used, 0)
    retries = max(retries - interrupted.retries_used, 0)
    lost = interrupted.attempt
    interruption = {"code": 503, "message": f"the runtime restarted while attempt {lost} was in flight"}
    if step.on_error.action == "retry":
        if retries > 0:
            return Budget(lost + 1, reruns, retries - 1, ON_ERROR_RETRY, interruption)
    elif reruns > 0:
        return Budget(lost + 1, reruns - 1, 0, TRANSPORT, interruption)
    message = f"step {step.id!r} was interrupted by a runtime restart during attempt {lost}, its last: no attempts are left"
    return Budget(lost, 0, 0, None, interruption, failed(500, message))


@functools.lru_cache(maxsize=64)
def _fresh(reruns: int, retries: int) -> Budget:
    """A step's budget when nothing was lost: one per (re-runs, retries), made once (every step asks)."""
    return Budget(1, reruns, retries)
