"""Which steps of an item can start now (flows.md §4): demand-driven and lazy.

Starting from the item's roots, follow what each expression needs *now* (``$if`` and
``$coalesce`` reveal their needs one decision at a time); a needed step whose own input
needs nothing unfinished is ready. A flow without such expressions needs the same steps
whatever the values, so its plan is worked out once (``PreparedFlow.static_plan``) and only
checked here. Pure: the engine calls it after every completion.
"""

from __future__ import annotations

from typing import Any

from runtime_server.flow.expressions import Scope
from runtime_server.flow.paths import MISSING
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow.results import failed


class ItemScope:
    """One item's view for expressions: its input, step outcomes so far, variables."""

    __slots__ = ("input", "outcomes", "variables")

    def __init__(self, item_input: Any, variables: dict[str, Any]) -> None:
        self.input = item_input
        self.outcomes: dict[str, Any] = {}
        self.variables = variables

    def variable(self, name: str) -> Any:
        return self.variables.get(name, MISSING)


def ready_steps(prepared: PreparedFlow, scope: Scope, started: set[int]) -> list[int]:
    """Indexes of needed steps, not yet started, whose inputs are complete; ascending."""
    if prepared.static_plan is not None:
        outcomes = scope.outcomes
        return [index for index, needs in prepared.static_plan if index not in started and all(step_id in outcomes for step_id in needs)]
    return demanded_ready_steps(prepared, scope, started)


def demanded_ready_steps(prepared: PreparedFlow, scope: Scope, started: set[int]) -> list[int]:
    """``ready_steps`` by following what each expression needs now (any flow)."""
    flow = prepared.flow
    ready: set[int] = set()
    seen: set[str] = set()
    pending = [step_id for root in prepared.roots for step_id in root.demand(scope)]
    while pending:
        step_id = pending.pop()
        if step_id in seen:
            continue
        seen.add(step_id)
        index = flow.step_index.get(step_id)
        if index is None:
            scope.outcomes[step_id] = failed(404, f"Step '{step_id}' is not defined in this flow")
            continue
        if index in started:
            continue
        needs = flow.steps[index].input.demand(scope)
        if needs:
            pending.extend(needs)
        else:
            ready.add(index)
    return sorted(ready)
