"""A flow made ready to run: parsed, validated, with its id, roots and variable defaults.

Prepared once per flow id and cached, so a run pays no parsing or validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime_server.flow.expressions import Expr, StepRef
from runtime_server.flow.model import Flow
from runtime_server.flow.paths import ROOT
from runtime_server.flow.validation import Diagnostics, validate

_INFERRED_DEFAULTS = {"string": "", "number": 0, "integer": 0, "boolean": False}


@dataclass(frozen=True)
class PreparedFlow:
    flow_id: str
    flow: Flow
    flow_json: dict[str, Any]
    diagnostics: Diagnostics
    roots: tuple[Expr, ...]
    """What an item must produce: the output, then every ``mustExecute`` step."""
    variable_defaults: dict[str, Any]
    static_plan: tuple[tuple[int, tuple[str, ...]], ...] | None = None
    """When nothing the flow needs depends on values: every needed step (index, ascending) with
    the steps its input needs. The scheduler then checks these instead of walking demands."""

    @property
    def runnable(self) -> bool:
        return self.diagnostics.num_fatal == 0


def prepare(flow_id: str, flow: Flow, flow_json: dict[str, Any]) -> PreparedFlow:
    must = tuple(StepRef(step.id, ROOT, f"$.steps[{index}].mustExecute") for index, step in enumerate(flow.steps) if step.must_execute)
    roots = (flow.output, *must)
    return PreparedFlow(flow_id, flow, flow_json, validate(flow), roots, variable_defaults(flow), static_plan(flow, roots))


def static_plan(flow: Flow, roots: tuple[Expr, ...]) -> tuple[tuple[int, tuple[str, ...]], ...] | None:
    """The needed steps and their needs, if no expression decides them at run time and every
    referenced step exists (else None: the scheduler follows demands, and reports missing steps)."""
    root_needs = [root.static_steps() for root in roots]
    if None in root_needs:
        return None
    pending = [step_id for needed in root_needs for step_id in needed or ()]
    needs: dict[int, tuple[str, ...]] = {}
    while pending:
        index = flow.step_index.get(pending.pop())
        if index is None:
            return None
        if index in needs:
            continue
        step_needs = flow.steps[index].input.static_steps()
        if step_needs is None:
            return None
        needs[index] = step_needs
        pending.extend(step_needs)
    return tuple(sorted(needs.items()))


def variable_defaults(flow: Flow) -> dict[str, Any]:
    """Schema defaults, else a type's zero value for variables that are not required."""
    schema = flow.variable_schemas()
    required = set(schema.get("required") or [])
    defaults: dict[str, Any] = {}
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        if "default" in spec:
            defaults[name] = spec["default"]
        elif name not in required:
            kind = spec.get("type")
            if isinstance(kind, list) and "null" in kind:
                defaults[name] = None
            elif kind in _INFERRED_DEFAULTS:
                defaults[name] = _INFERRED_DEFAULTS[kind]
    return defaults
