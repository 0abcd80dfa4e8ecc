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

    @property
    def runnable(self) -> bool:
        return self.diagnostics.num_fatal == 0


def prepare(flow_id: str, flow: Flow, flow_json: dict[str, Any]) -> PreparedFlow:
    must = tuple(StepRef(step.id, ROOT, f"$.steps[{index}].mustExecute") for index, step in enumerate(flow.steps) if step.must_execute)
    return PreparedFlow(flow_id, flow, flow_json, validate(flow), (flow.output, *must), variable_defaults(flow))


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
