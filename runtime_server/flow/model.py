"""The v1 flow format (flows.md §1): parse JSON/YAML-shaped data into a Flow, and back.

Parsing rejects what upstream rejects (steps as a mapping, unknown ``onError`` actions,
malformed expressions) with the location of the problem; unknown keys are ignored, and a
key given as ``null`` is the key left out (upstream's SDK ``FlowBuilder`` writes every unset
option as ``null``; upstream 0.11.1 made this the rule). Required keys given as ``null``
are refused naming the key, as if missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from runtime_server.flow.expressions import Expr, ExpressionError, parse_expr
from runtime_server.nulls import without_nulls

DEFAULT_RETRY_ATTEMPTS = 3


class FlowParseError(ValueError):
    def __init__(self, message: str, location: str = "$") -> None:
        super().__init__(f"{message} (at {location})")
        self.message = message
        self.location = location


class FlowTooDeep(ValueError):
    """The text nests deeper than the YAML parser goes (libyaml stops at 1000 levels; the pure-Python one at the recursion limit)."""


@dataclass(frozen=True)
class OnError:
    action: str = "fail"
    """``fail`` | ``useDefault`` | ``retry``."""
    default_value: Any = None
    max_attempts: int = DEFAULT_RETRY_ATTEMPTS
    """For ``retry``: total attempts including the first (an extension; upstream ignores retry)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.action == "useDefault" and self.default_value is not None:
            out["defaultValue"] = self.default_value
        if self.action == "retry" and self.max_attempts != DEFAULT_RETRY_ATTEMPTS:
            out["maxAttempts"] = self.max_attempts
        return out


@dataclass
class Step:
    id: str
    component: str
    input: Expr
    on_error: OnError = field(default_factory=OnError)
    on_error_written: bool = False
    """Whether the flow says ``onError`` (even ``fail``): upstream keeps what is written, and so the flow id."""
    must_execute: bool | None = None
    """None when not written (upstream keeps a written ``false``)."""
    metadata: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "component": self.component}
        if self.on_error_written:
            out["onError"] = self.on_error.to_json()
        step_input = self.input.to_json()
        if step_input is not None:
            out["input"] = step_input
        if self.must_execute is not None:
            out["mustExecute"] = self.must_execute
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Flow:
    steps: list[Step]
    output: Expr
    name: str | None = None
    description: str | None = None
    version: str | None = None
    schemas: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    examples: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    step_index: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The normalised form: what is hashed into the flow id and served back."""
        out: dict[str, Any] = {}
        for key in ("name", "description", "version", "schemas"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["steps"] = [step.to_json() for step in self.steps]
        output = self.output.to_json()
        if output is not None:
            out["output"] = output
        for key in ("test", "examples"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    def variable_schemas(self) -> dict[str, Any]:
        variables = ((self.schemas or {}).get("properties") or {}).get("variables") or {}
        return variables if isinstance(variables, dict) else {}


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it: ~3x faster on large flows (docs/limits.md)."""


def load_flow_text(text: str | bytes) -> Any:
    """YAML or JSON text (JSON is YAML) into plain data."""
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except RecursionError:
        raise FlowTooDeep() from None
    except yaml.YAMLError as error:
        if getattr(error, "problem", None) == "exceeded maximum nesting depth":
            raise FlowTooDeep() from None
        raise FlowParseError(f"the flow is not valid YAML or JSON: {error}") from None


def parse_flow(data: Any) -> Flow:
    if not isinstance(data, dict):
        raise FlowParseError(f"a flow must be an object, got {type(data).__name__}")
    data = without_nulls(data)
    steps_data = data.get("steps") or []
    if isinstance(steps_data, dict):
        raise FlowParseError(
            "steps must be a list of {id, component, input}; the pre-v1 layout with steps as a mapping is not accepted",
            "$.steps",
        )
    if not isinstance(steps_data, list):
        raise FlowParseError(f"steps must be a list, got {type(steps_data).__name__}", "$.steps")
    steps = [_parse_step(step, f"$.steps[{index}]") for index, step in enumerate(steps_data)]
    flow = Flow(
        steps=steps,
        output=_expr(data.get("output"), "$.output"),
        name=_optional_str(data, "name"),
        description=_optional_str(data, "description"),
        version=_optional_str(data, "version"),
        schemas=_schemas(_optional_dict(data, "schemas")),
        test=_test(_optional_dict(data, "test")),
        examples=data.get("examples") if isinstance(data.get("examples"), list) else None,
        metadata=_optional_dict(data, "metadata"),
    )
    for index, step in enumerate(steps):
        flow.step_index.setdefault(step.id, index)
    return flow


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise FlowParseError(f"{key} must be a string", f"$.{key}")
    return value


def _schemas(schemas: dict[str, Any] | None) -> dict[str, Any] | None:
    """As upstream reads and writes them (flows.md §1.3): ``$defs``, ``properties.{input, output, variables}``
    and the step schemas ``properties.steps.properties``; anything else is dropped, and nothing left is no schemas."""
    if schemas is None:
        return None
    properties = schemas.get("properties")
    properties = without_nulls(properties) if isinstance(properties, dict) else {}
    kept: dict[str, Any] = {key: properties[key] for key in ("input", "output", "variables") if key in properties}
    step_schemas = properties.get("steps")
    if isinstance(step_schemas, dict) and step_schemas.get("properties"):
        kept["steps"] = {"type": "object", "properties": step_schemas["properties"]}
    out: dict[str, Any] = {"type": "object"}
    if schemas.get("$defs"):
        out["$defs"] = schemas["$defs"]
    if kept:
        out["properties"] = kept
    return out if len(out) > 1 else None


def _test(test: dict[str, Any] | None) -> dict[str, Any] | None:
    """Upstream leaves an empty ``cases`` list out."""
    if test is None or test.get("cases"):
        return test
    return {key: value for key, value in test.items() if key != "cases"}


def _optional_dict(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise FlowParseError(f"{key} must be an object", f"$.{key}")
    return value


def _expr(value: Any, location: str) -> Expr:
    try:
        return parse_expr(value, location)
    except ExpressionError as error:
        raise FlowParseError(error.message, error.location) from None


def _parse_step(data: Any, location: str) -> Step:
    if not isinstance(data, dict):
        raise FlowParseError("a step must be an object with id and component", location)
    data = without_nulls(data)
    for key in ("id", "component"):
        if not isinstance(data.get(key), str):
            raise FlowParseError(f"step field {key!r} is required and must be a string", f"{location}.{key}")
    must_execute = data.get("mustExecute")
    if must_execute is not None and not isinstance(must_execute, bool):
        raise FlowParseError("mustExecute must be true or false", f"{location}.mustExecute")
    return Step(
        id=data["id"],
        component=data["component"],
        input=_expr(data.get("input"), f"{location}.input"),
        on_error=_parse_on_error(data.get("onError"), f"{location}.onError"),
        on_error_written="onError" in data,
        must_execute=must_execute,
        metadata=data.get("metadata") if isinstance(data.get("metadata"), dict) else None,
    )


def _parse_on_error(data: Any, location: str) -> OnError:
    if data is None:
        return OnError()
    if not isinstance(data, dict):
        raise FlowParseError("onError must be an object with an action", location)
    data = without_nulls(data)
    action = data.get("action")
    if action is None:
        raise FlowParseError("onError needs an action: fail, useDefault or retry", f"{location}.action")
    if action == "fail":
        return OnError()
    if action == "useDefault":
        return OnError(action, default_value=data.get("defaultValue"))
    if action == "retry":
        attempts = data.get("maxAttempts", DEFAULT_RETRY_ATTEMPTS)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 100:
            raise FlowParseError("maxAttempts must be an integer from 1 to 100", f"{location}.maxAttempts")
        return OnError(action, max_attempts=attempts)
    raise FlowParseError(f"unknown onError action {action!r}: use fail, useDefault or retry", f"{location}.action")
