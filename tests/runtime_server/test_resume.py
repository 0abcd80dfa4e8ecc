"""What a recovered run resumes with: finished steps kept, interrupted ones run again with the
next attempt, budgets continued across restarts (runs/resume.py, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime_server.flow.expressions import parse_expr
from runtime_server.flow.model import OnError, Step
from runtime_server.flow.results import Failed, failed
from runtime_server.runs.record import PENDING, JournalEntry
from runtime_server.runs.resume import ON_ERROR_RETRY, TRANSPORT, Budget, Interrupted, first_budget, resume_of


def entry(
    kind: str, item: int | None = 0, step: str | None = "a", attempt: int | None = None, status: str | None = None, outcome: Any = PENDING
) -> JournalEntry:
    return (0, kind, item, step, attempt, status, None, None, outcome, None)


@pytest.mark.parametrize(
    ("journal", "finished", "interrupted", "items_done"),
    [
        ([entry("run_started", None, None)], {}, {}, set()),
        ([entry("step_started", attempt=1)], {}, {(0, "a"): Interrupted(1)}, set()),
        ([entry("step_started", attempt=1), entry("step_succeeded", attempt=1, outcome=5)], {0: {"a": 5}}, {}, set()),
        ([entry("step_started", attempt=1), entry("step_failed", outcome=failed(500, "x"))], {0: {"a": failed(500, "x")}}, {}, set()),
        (
            [entry("step_started", attempt=1), entry("step_retried", attempt=2, status=TRANSPORT), entry("step_retried", attempt=3, status=ON_ERROR_RETRY)],
            {},
            {(0, "a"): Interrupted(3, reruns_used=1, retries_used=1)},
            set(),
        ),
        ([entry("step_started", attempt=1), entry("step_succeeded", outcome=1), entry("item_completed", step=None, outcome=1)], {0: {"a": 1}}, {}, {0}),
        (
            [entry("step_started", item=1, attempt=1), entry("step_started", item=0, step="b", attempt=1)],
            {},
            {(1, "a"): Interrupted(1), (0, "b"): Interrupted(1)},
            set(),
        ),
        ([entry("step_started", attempt=2), entry("step_retried", attempt=3, status=TRANSPORT)], {}, {(0, "a"): Interrupted(3, reruns_used=1)}, set()),
    ],
)
def test_resume_of_the_journal(journal: list[JournalEntry], finished: dict, interrupted: dict, items_done: set[int]) -> None:
    resume = resume_of(journal)
    assert resume.finished_steps == finished
    assert resume.interrupted_steps == interrupted
    assert resume.finished_items == items_done


def test_restore_fills_outcomes_and_says_which_steps_started() -> None:
    resume = resume_of([entry("step_started", attempt=1), entry("step_succeeded", outcome=7), entry("step_started", step="b", attempt=1)])
    outcomes: dict[str, Any] = {}
    assert resume.restore(0, outcomes, {"a": 0, "b": 1}) == [0]
    assert outcomes == {"a": 7}
    assert resume.interrupted(0, "b") == Interrupted(1)
    assert resume.interrupted(0, "b") is None, "taken once: a later run of the step is an ordinary one"


def step(on_error: OnError | None = None) -> Step:
    return Step(id="a", component="/c", input=parse_expr({}), on_error=on_error or OnError())


RETRY3 = OnError(action="retry", max_attempts=3)


@pytest.mark.parametrize(
    ("on_error", "step_attempts", "interrupted", "expected"),
    [
        (None, 3, None, Budget(1, 2, 0)),
        (RETRY3, 3, None, Budget(1, 2, 2)),
        (None, 3, Interrupted(1), Budget(2, 1, 0, TRANSPORT)),
        (None, 3, Interrupted(2, reruns_used=1), Budget(3, 0, 0, TRANSPORT)),
        (RETRY3, 3, Interrupted(2, retries_used=1), Budget(3, 2, 0, ON_ERROR_RETRY)),
        (RETRY3, 3, Interrupted(1), Budget(2, 2, 1, ON_ERROR_RETRY)),
        (RETRY3, 1, Interrupted(3, reruns_used=0, retries_used=1), Budget(4, 0, 0, ON_ERROR_RETRY)),
    ],
)
def test_first_budget_continues_the_budgets(on_error: OnError | None, step_attempts: int, interrupted: Interrupted | None, expected: Budget) -> None:
    budget = first_budget(step(on_error), step_attempts, interrupted)
    assert (budget.attempt, budget.reruns_left, budget.retries_left, budget.recovered) == (
        expected.attempt,
        expected.reruns_left,
        expected.retries_left,
        expected.recovered,
    )
    assert budget.exhausted is None
    if interrupted is not None:
        assert budget.interruption == {"code": 503, "message": f"the runtime restarted while attempt {interrupted.attempt} was in flight"}


@pytest.mark.parametrize(
    ("on_error", "step_attempts", "interrupted"),
    [
        (OnError(action="retry", max_attempts=2), 3, Interrupted(2, retries_used=1)),  # attempt 2 of 2: transport re-runs do not stretch it
        (RETRY3, 3, Interrupted(3, retries_used=2)),
        (None, 2, Interrupted(2, reruns_used=1)),
        (None, 1, Interrupted(1)),
    ],
)
def test_a_step_interrupted_on_its_last_attempt_fails_without_running_again(on_error: OnError | None, step_attempts: int, interrupted: Interrupted) -> None:
    """The lost attempt was the step's last: it fails, it never gets a fresh budget."""
    budget = first_budget(step(on_error), step_attempts, interrupted)
    assert isinstance(budget.exhausted, Failed)
    assert f"during attempt {interrupted.attempt}, its last" in budget.exhausted.error.message
