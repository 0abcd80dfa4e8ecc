"""The SDK's front door: ``ComponentServer`` and its ``@server.component`` decorator.

A component is a plain function (sync or async) of one input, optionally followed by a
``Context``. Its type hints are the contract: the input is converted to the first
parameter's type (msgspec Struct, dict, ...), and both hints become the JSON schemas
``components/list`` and ``components/info`` answer with.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from wire_protocol.messages import ComponentInfo

Function = TypeVar("Function", bound=Callable[..., Any])


@dataclass(frozen=True)
class Component:
    name: str
    function: Callable[..., Any]
    input_type: Any
    takes_context: bool
    is_async: bool
    info: ComponentInfo

    def parse_input(self, value: Any) -> Any:
        """Convert the step's JSON input to the declared type; msgspec.ValidationError names the field."""
        if self.input_type is Any:
            return value
        return msgspec.convert(value, type=self.input_type)


def _schema(annotation: Any, what: str, function_name: str) -> dict[str, Any]:
    try:
        return msgspec.json.schema(annotation)
    except TypeError as exc:
        raise TypeError(f"component {function_name!r}: its {what} type {annotation!r} has no JSON schema: {exc}") from None


def describe(function: Callable[..., Any], name: str | None = None, description: str | None = None) -> Component:
    """Build the registry entry for a function, failing at import time on an unusable signature."""
    parameters = list(inspect.signature(function).parameters.values())
    if len(parameters) not in (1, 2):
        raise TypeError(f"component {function.__name__!r} must take (input) or (input, context), it takes {len(parameters)} parameters")
    hints = typing.get_type_hints(function)
    input_type = hints.get(parameters[0].name, Any)
    output_type = hints.get("return", Any)
    component_name = name or function.__name__
    if not component_name.startswith("/"):
        component_name = f"/{component_name}"
    docstring = inspect.getdoc(function)
    info = ComponentInfo(
        component=component_name,
        description=description or (docstring.strip() if docstring else None),
        input_schema=_schema(input_type, "input", function.__name__),
        output_schema=_schema(output_type, "output", function.__name__),
    )
    return Component(
        name=component_name,
        function=function,
        input_type=input_type,
        takes_context=len(parameters) == 2,
        is_async=inspect.iscoroutinefunction(function),
        info=info,
    )


class ComponentServer:
    """Components by name (``/double``). Serve them with ``component_server.serve``."""

    def __init__(self) -> None:
        self._components: dict[str, Component] = {}

    def component(self, function: Function | None = None, *, name: str | None = None, description: str | None = None) -> Any:
        """Register ``function``; usable bare (``@server.component``) or with options."""

        def register(target: Function) -> Function:
            entry = describe(target, name, description)
            if entry.name in self._components:
                raise ValueError(f"component {entry.name!r} is registered twice")
            self._components[entry.name] = entry
            return target

        return register if function is None else register(function)

    def get(self, name: str) -> Component | None:
        return self._components.get(name)

    def infos(self) -> Sequence[ComponentInfo]:
        return [entry.info for entry in self._components.values()]
