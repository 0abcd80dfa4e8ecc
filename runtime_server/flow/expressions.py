"""Value expressions (flows.md §2): parsed once per flow into nodes, resolved per item.

Each node answers three questions: which steps it may reference (``step_refs``, for
validation), which unfinished steps it needs *now* (``demand``, lazy through ``$if`` and
``$coalesce``), and its value once those are done (``resolve``). Sub-trees without
references collapse into literals at parse time.
"""

from __future__ import annotations

from typing import Any, Protocol

from runtime_server.flow.paths import MISSING, JsonPath, PathSyntaxError, parse_path
from runtime_server.flow.results import Failed, failed


class ExpressionError(ValueError):
    def __init__(self, message: str, location: str) -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location


class Scope(Protocol):
    """What an item offers expressions: its input, step outcomes so far, variables."""

    input: Any
    outcomes: dict[str, Any]

    def variable(self, name: str) -> Any: ...


class Expr:
    __slots__ = ()

    def resolve(self, scope: Scope) -> Any:
        raise NotImplementedError

    def demand(self, scope: Scope) -> list[str]:
        return []

    def static_steps(self) -> tuple[str, ...] | None:
        """The steps this always needs, whatever the values: None when what it needs depends on
        them (``$if``, ``$coalesce``, a ``$variable`` with a default). Lets the scheduler skip demand."""
        return ()

    def step_refs(self) -> list[tuple[str, str]]:
        """(step id, location) of every ``$step`` anywhere inside."""
        return []

    def to_json(self) -> Any:
        raise NotImplementedError


class Literal(Expr):
    __slots__ = ("value", "escaped")

    def __init__(self, value: Any, escaped: bool = False) -> None:
        self.value = value
        self.escaped = escaped

    def resolve(self, scope: Scope) -> Any:
        return self.value

    def to_json(self) -> Any:
        return {"$literal": self.value} if self.escaped else self.value


class InputRef(Expr):
    __slots__ = ("path",)

    def __init__(self, path: JsonPath) -> None:
        self.path = path

    def resolve(self, scope: Scope) -> Any:
        value = self.path.lookup(scope.input)
        if value is MISSING:
            return failed(1, f"Input path {self.path.text} not found")
        return value

    def to_json(self) -> Any:
        return {"$input": self.path.text}


class StepRef(Expr):
    __slots__ = ("step_id", "path", "location")

    def __init__(self, step_id: str, path: JsonPath, location: str) -> None:
        self.step_id = step_id
        self.path = path
        self.location = location

    def resolve(self, scope: Scope) -> Any:
        outcome = scope.outcomes.get(self.step_id, MISSING)
        if outcome is MISSING:
            return failed(500, f"Step {self.step_id} not completed")
        if isinstance(outcome, Failed) or outcome is None or self.path.is_root:
            return outcome
        value = self.path.lookup(outcome)
        if value is MISSING:
            return failed(1, f"Path {self.path.text} not found")
        return value

    def demand(self, scope: Scope) -> list[str]:
        return [] if self.step_id in scope.outcomes else [self.step_id]

    def static_steps(self) -> tuple[str, ...] | None:
        return (self.step_id,)

    def step_refs(self) -> list[tuple[str, str]]:
        return [(self.step_id, self.location)]

    def to_json(self) -> Any:
        if self.path.is_root:
            return {"$step": self.step_id}
        return {"$step": self.step_id, "path": self.path.text}


class VariableRef(Expr):
    __slots__ = ("name", "path", "default", "text")

    def __init__(self, path: JsonPath, default: Expr | None, location: str) -> None:
        if path.is_root or not isinstance(path.parts[0], str):
            raise ExpressionError("$variable needs a variable name", location)
        self.name = path.parts[0]
        self.path = JsonPath(path.parts[1:])
        self.default = default
        self.text = path.text

    def _lookup(self, scope: Scope) -> Any:
        value = scope.variable(self.name)
        return MISSING if value is MISSING else self.path.lookup(value)

    def resolve(self, scope: Scope) -> Any:
        value = self._lookup(scope)
        if value is not MISSING:
            return value
        if self.default is not None:
            return self.default.resolve(scope)
        return failed(1, f"Undefined variable: {self.name}")

    def demand(self, scope: Scope) -> list[str]:
        if self.default is None or self._lookup(scope) is not MISSING:
            return []
        return self.default.demand(scope)

    def static_steps(self) -> tuple[str, ...] | None:
        return () if self.default is None else None

    def step_refs(self) -> list[tuple[str, str]]:
        return self.default.step_refs() if self.default else []

    def to_json(self) -> Any:
        out: dict[str, Any] = {"$variable": self.text}
        if self.default is not None:
            out["default"] = self.default.to_json()
        return out


def _all_static(exprs: list[Expr]) -> tuple[str, ...] | None:
    steps: list[str] = []
    for expr in exprs:
        needed = expr.static_steps()
        if needed is None:
            return None
        steps.extend(needed)
    return tuple(steps)


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or isinstance(value, Failed))


class If(Expr):
    __slots__ = ("condition", "then", "otherwise")

    def __init__(self, condition: Expr, then: Expr, otherwise: Expr | None) -> None:
        self.condition = condition
        self.then = then
        self.otherwise = otherwise

    def _branch(self, scope: Scope) -> Expr | None:
        return self.then if _truthy(self.condition.resolve(scope)) else self.otherwise

    def resolve(self, scope: Scope) -> Any:
        branch = self._branch(scope)
        return None if branch is None else branch.resolve(scope)

    def demand(self, scope: Scope) -> list[str]:
        needed = self.condition.demand(scope)
        if needed:
            return needed
        branch = self._branch(scope)
        return [] if branch is None else branch.demand(scope)

    def static_steps(self) -> tuple[str, ...] | None:
        return None

    def step_refs(self) -> list[tuple[str, str]]:
        refs = self.condition.step_refs() + self.then.step_refs()
        return refs + (self.otherwise.step_refs() if self.otherwise else [])

    def to_json(self) -> Any:
        out = {"$if": self.condition.to_json(), "then": self.then.to_json()}
        if self.otherwise is not None:
            out["else"] = self.otherwise.to_json()
        return out


class Coalesce(Expr):
    __slots__ = ("options",)

    def __init__(self, options: list[Expr]) -> None:
        self.options = options

    def resolve(self, scope: Scope) -> Any:
        for option in self.options:
            value = option.resolve(scope)
            if value is not None:
                return value
        return None

    def demand(self, scope: Scope) -> list[str]:
        for option in self.options:
            needed = option.demand(scope)
            if needed:
                return needed
            if option.resolve(scope) is not None:
                return []
        return []

    def static_steps(self) -> tuple[str, ...] | None:
        return None

    def step_refs(self) -> list[tuple[str, str]]:
        return [ref for option in self.options for ref in option.step_refs()]

    def to_json(self) -> Any:
        return {"$coalesce": [option.to_json() for option in self.options]}


class ObjectTemplate(Expr):
    __slots__ = ("fields",)

    def __init__(self, fields: list[tuple[str, Expr]]) -> None:
        self.fields = fields

    def resolve(self, scope: Scope) -> Any:
        out = {}
        for key, expr in self.fields:
            value = expr.resolve(scope)
            if isinstance(value, Failed):
                return value
            out[key] = value
        return out

    def demand(self, scope: Scope) -> list[str]:
        return [step for _, expr in self.fields for step in expr.demand(scope)]

    def static_steps(self) -> tuple[str, ...] | None:
        return _all_static([expr for _, expr in self.fields])

    def step_refs(self) -> list[tuple[str, str]]:
        return [ref for _, expr in self.fields for ref in expr.step_refs()]

    def to_json(self) -> Any:
        return {key: expr.to_json() for key, expr in self.fields}


class ArrayTemplate(Expr):
    __slots__ = ("items",)

    def __init__(self, items: list[Expr]) -> None:
        self.items = items

    def resolve(self, scope: Scope) -> Any:
        out = []
        for expr in self.items:
            value = expr.resolve(scope)
            if isinstance(value, Failed):
                return value
            out.append(value)
        return out

    def demand(self, scope: Scope) -> list[str]:
        return [step for expr in self.items for step in expr.demand(scope)]

    def static_steps(self) -> tuple[str, ...] | None:
        return _all_static(self.items)

    def step_refs(self) -> list[tuple[str, str]]:
        return [ref for expr in self.items for ref in expr.step_refs()]

    def to_json(self) -> Any:
        return [expr.to_json() for expr in self.items]


def parse_expr(value: Any, location: str = "$") -> Expr:
    """Parse plain JSON into an expression; ``location`` names where it sits in the flow.

    Inside expressions ``null`` is a value, not an absent key (``else: null``, ``default: null``):
    upstream 0.9.0 keeps both, in the flow id too."""
    if isinstance(value, dict):
        return _parse_object(value, location)
    if isinstance(value, list):
        items = [parse_expr(item, f"{location}[{index}]") for index, item in enumerate(value)]
        if all(type(item) is Literal and not item.escaped for item in items):
            return Literal(value)
        return ArrayTemplate(items)
    return Literal(value)


def _path(value: Any, key: str, location: str) -> JsonPath:
    if value is not None and not isinstance(value, str):
        raise ExpressionError(f"{key} must be a path string or null, got {type(value).__name__}", location)
    try:
        return parse_path(value)
    except PathSyntaxError as error:
        raise ExpressionError(str(error), location) from None


def _parse_object(value: dict[str, Any], location: str) -> Expr:
    if "$literal" in value:
        return Literal(value["$literal"], escaped=True)
    if "$if" in value:
        if "then" not in value:
            raise ExpressionError("$if needs a 'then' branch", location)
        return If(
            parse_expr(value["$if"], f"{location}.$if"),
            parse_expr(value["then"], f"{location}.then"),
            parse_expr(value["else"], f"{location}.else") if "else" in value else None,
        )
    if "$coalesce" in value:
        options = value["$coalesce"]
        if not isinstance(options, list):
            raise ExpressionError("$coalesce takes a list of expressions", location)
        return Coalesce([parse_expr(option, f"{location}.$coalesce[{index}]") for index, option in enumerate(options)])
    if "$step" in value:
        step_id = value["$step"]
        if not isinstance(step_id, str):
            raise ExpressionError("$step must be a step id string", location)
        return StepRef(step_id, _path(value.get("path"), "path", location), location)
    if "$input" in value:
        return InputRef(_path(value["$input"], "$input", location))
    if "$variable" in value:  # a written ``default: null`` is a default of null, as upstream has it
        path = _path(value["$variable"], "$variable", location)
        return VariableRef(path, parse_expr(value["default"], f"{location}.default") if "default" in value else None, location)
    fields = [(key, parse_expr(item, f"{location}.{key}")) for key, item in value.items()]
    if all(type(expr) is Literal and not expr.escaped for _, expr in fields):
        return Literal(value)
    return ObjectTemplate(fields)
