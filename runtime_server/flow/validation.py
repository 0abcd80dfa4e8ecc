"""Static checks of a parsed flow (flows.md §8): diagnostics with a code, a level and a path.

Fatal diagnostics (3xxx) stop a flow from being stored or run; errors and warnings are
reported but do not block.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime_server.flow.model import Flow


class Diagnostic(msgspec.Struct, omit_defaults=True):
    kind: str
    code: int
    level: str
    formatted: str
    path: str | None = None
    data: dict[str, Any] | None = None


class Diagnostics(msgspec.Struct, rename="camel"):
    diagnostics: list[Diagnostic]
    num_fatal: int
    num_error: int
    num_warning: int

    @property
    def fatal(self) -> list[Diagnostic]:
        return [diagnostic for diagnostic in self.diagnostics if diagnostic.level == "fatal"]


def _level(code: int) -> str:
    return "fatal" if code >= 3000 else "error" if code >= 2000 else "warning"


OUTPUT = "workflow_output"
"""What upstream calls the flow's output when a diagnostic names where a reference is made."""


def _diagnostic(kind: str, code: int, formatted: str, path: str, **data: Any) -> Diagnostic:
    return Diagnostic(kind, code, _level(code), formatted, path, data or None)


def validate(flow: Flow) -> Diagnostics:
    found = _nul_checks(flow) + _flow_warnings(flow) + _step_checks(flow) + _output_checks(flow) + _reachability_warnings(flow)
    counts = {level: sum(1 for d in found if d.level == level) for level in ("fatal", "error", "warning")}
    return Diagnostics(found, counts["fatal"], counts["error"], counts["warning"])


def _nul_checks(flow: Flow) -> list[Diagnostic]:
    """A NUL character in the flow's name or a step id: PostgreSQL's text cannot hold it, and a run
    the durable store could not write would wait forever, so no store takes such a flow."""
    named = [("$.name", "The flow's name", flow.name or "")]
    named += [(f"$.steps[{index}].id", f"Step {index}'s id", step.id) for index, step in enumerate(flow.steps)]
    return [
        _diagnostic("nulCharacter", 3900, f"{what} contains a NUL character (\\u0000), which is not allowed", path)
        for path, what, text in named
        if "\x00" in text
    ]


def _flow_warnings(flow: Flow) -> list[Diagnostic]:
    found = []
    if not flow.name:
        found.append(_diagnostic("missingFlowName", 1001, "Workflow has no name", "$.name"))
    if not flow.description:
        found.append(_diagnostic("missingFlowDescription", 1002, "Workflow has no description", "$.description"))
    return found


def _step_checks(flow: Flow) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for index, step in enumerate(flow.steps):
        location = f"$.steps[{index}]"
        if not step.id:
            found.append(_diagnostic("emptyStepId", 3001, f"Step {index} has an empty id", f"{location}.id"))
        elif step.id in seen:
            found.append(_diagnostic("duplicateStepId", 3000, f"Duplicate step ID '{step.id}'", f"{location}.id", step_id=step.id))
        else:
            seen[step.id] = index
        if not step.component.startswith("/"):
            problem = "Component path must start with '/'"
            found.append(
                _diagnostic(
                    "invalidComponent",
                    2500,
                    f"Invalid component '{step.component}' in step '{step.id}': {problem}",
                    f"{location}.component",
                    step_id=step.id,
                    component=step.component,
                    error=problem,
                )
            )
        for referenced, ref_location in step.input.step_refs():
            if referenced == step.id:
                found.append(_diagnostic("selfReference", 3002, f"Step '{step.id}' references itself", ref_location, step_id=step.id))
            elif referenced not in seen:
                later = " (it is defined later; a step may only use earlier steps)" if referenced in flow.step_index else ""
                found.append(
                    _diagnostic(
                        "undefinedStepReference",
                        3003,
                        f"Step '{step.id}' references undefined step '{referenced}'{later}",
                        ref_location,
                        from_step=step.id,
                        referenced_step=referenced,
                    )
                )
    return found


def _output_checks(flow: Flow) -> list[Diagnostic]:
    return [
        _diagnostic(
            "undefinedStepReference", 3003, f"Step '{OUTPUT}' references undefined step '{referenced}'", location, from_step=OUTPUT, referenced_step=referenced
        )
        for referenced, location in flow.output.step_refs()
        if referenced not in flow.step_index
    ]


def _reachability_warnings(flow: Flow) -> list[Diagnostic]:
    """Steps neither the output nor a ``mustExecute`` step needs: they would never run."""
    needs = dependencies(flow)
    pending = [referenced for referenced, _ in flow.output.step_refs()] + [step.id for step in flow.steps if step.must_execute]
    reached: set[str] = set()
    while pending:
        step_id = pending.pop()
        if step_id not in reached:
            reached.add(step_id)
            pending.extend(needs.get(step_id, ()))
    return [
        _diagnostic("unreachableStep", 1000, f"Step '{step.id}' is not reachable from the output", f"$.steps[{index}]", step_id=step.id)
        for index, step in enumerate(flow.steps)
        if step.id not in reached
    ]


def dependencies(flow: Flow) -> dict[str, list[str]]:
    """Step id → the steps its input references, in flow order (for reports and tests)."""
    return {step.id: sorted({ref for ref, _ in step.input.step_refs()}, key=lambda ref: flow.step_index.get(ref, -1)) for step in flow.steps}
