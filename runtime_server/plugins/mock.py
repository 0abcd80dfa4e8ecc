"""The ``mock`` plugin (config.md §2.4): components whose behaviour is a table input → FlowResult.

Behaviour keys are matched as canonical JSON (sorted keys), so the YAML mapping keys of
upstream's test configs and JSON-string keys both work.
"""

from __future__ import annotations

import json
from typing import Any

from runtime_server.flow.results import from_wire
from runtime_server.plugins.base import ComponentFailed, ExecuteRequest, PluginHealth
from wire_protocol.messages import ComponentInfo


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _canonical_key(key: Any) -> str:
    try:
        return canonical(json.loads(key)) if isinstance(key, str) else canonical(key)
    except ValueError:
        return canonical(key)


class MockPlugin:
    remote = False
    """Runs in the runtime's process: the engine journals no dispatch before calling it."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        components = options.get("components") or {}
        if not isinstance(components, dict):
            raise ValueError(f"mock plugin {name!r}: 'components' must map component names to {{behaviors: ...}}")
        self._components = components
        self._behaviors = {
            component: {_canonical_key(key): result for key, result in (spec.get("behaviors") or {}).items()} for component, spec in components.items()
        }

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_components(self) -> list[ComponentInfo]:
        return [
            ComponentInfo(component=name, input_schema=spec.get("input_schema"), output_schema=spec.get("output_schema"))
            for name, spec in self._components.items()
        ]

    async def execute(self, request: ExecuteRequest) -> Any:
        behaviors = self._behaviors.get(request.component)
        if behaviors is None:
            raise ComponentFailed(f"Component {request.component} is not defined in mock plugin {self.name!r}")
        result = behaviors.get(canonical(request.input))
        if result is None:
            compact = json.dumps(request.input, separators=(",", ":"), ensure_ascii=False)
            raise ComponentFailed(f"No behavior defined for {request.component} on {compact}")
        return from_wire(result)

    def health(self) -> PluginHealth:
        return PluginHealth(True, {"components": len(self._components)})
