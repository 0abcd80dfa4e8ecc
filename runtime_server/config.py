"""Runtime configuration (config.md): the YAML/JSON file plus command line and environment.

Upstream keys are camelCase and unknown keys are ignored. Extensions (docs/limits.md):
``stateStore`` takes ``maxRuns``/``maxAgeSeconds`` (retention); ``stepAttempts`` bounds how
often a step is re-run after a retriable transport failure (deadlines are per plugin, in
its entry); ``limits`` bounds what one API request may ask for; with no config file the
builtins are routed at ``/{*component}`` and ``/builtin/{*component}`` (upstream routes nothing).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PORT = 7840
DEFAULT_METRICS_PORT = 9090
DEFAULT_CONFIG: dict[str, Any] = {
    "plugins": {"builtin": {"type": "builtin"}},
    "routes": {"/builtin/{*component}": [{"plugin": "builtin"}], "/{*component}": [{"plugin": "builtin"}]},
}


class ConfigError(ValueError):
    pass


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML that also takes mapping keys that are themselves mappings (mock behaviours):
    such keys become their canonical JSON text."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (dict, list)):
            key = json.dumps(key, sort_keys=True, separators=(",", ":"))
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_ConfigLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class ApiLimits:
    """What one REST request may ask of the runtime; each is a key of the config's ``limits``."""

    max_request_bytes: int = 16 * 1024 * 1024
    """Request body size (413 above)."""
    max_nesting_depth: int = 64
    """Arrays/objects inside each other anywhere in a body or flow (400 above)."""
    max_flow_steps: int = 1000
    """Steps of one flow (413 above)."""
    max_flow_values: int = 1_000_000
    """Values a YAML flow expands to, counting every alias use (413 above: YAML bombs)."""
    max_flow_text_bytes: int = 256 * 1024
    """A flow sent as YAML/JSON text (413 above): PyYAML parses ~0.2-1 MB/s and blocks the server meanwhile."""
    max_concurrent_runs: int = 1000
    """Top-level runs in flight; a new run beyond it is refused with 429 (nothing is created)."""


_LIMIT_KEYS = {
    "maxRequestBytes": "max_request_bytes",
    "maxNestingDepth": "max_nesting_depth",
    "maxFlowSteps": "max_flow_steps",
    "maxFlowValues": "max_flow_values",
    "maxFlowTextBytes": "max_flow_text_bytes",
    "maxConcurrentRuns": "max_concurrent_runs",
}


@dataclass(frozen=True)
class RuntimeSettings:
    plugins: dict[str, dict[str, Any]]
    routes: dict[str, Any]
    state_store: str = "inMemory"
    database_path: str | None = None
    max_runs: int = 10_000
    max_age_seconds: float = 3600.0
    working_directory: Path = field(default_factory=Path.cwd)
    step_attempts: int = 3
    """Runs of a step when the transport fails retriably (each may land on another pod)."""
    limits: ApiLimits = field(default_factory=ApiLimits)


def _positive(section: dict[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}.{key} must be a positive number, got {value!r}")
    return value


def _limits(data: Any) -> ApiLimits:
    section = data.get("limits") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"limits must be a mapping of limit name to a positive integer, got {section!r}")
    unknown = sorted(set(section) - set(_LIMIT_KEYS))
    if unknown:
        raise ConfigError(f"unknown limits {', '.join(unknown)}: the limits are {', '.join(_LIMIT_KEYS)}")
    defaults = ApiLimits()
    return ApiLimits(**{name: int(_positive(section, key, getattr(defaults, name), "limits")) for key, name in _LIMIT_KEYS.items()})


def settings_from_data(data: Any, base_dir: Path) -> RuntimeSettings:
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping with 'plugins' and 'routes'")
    plugins = data.get("plugins")
    if not isinstance(plugins, dict) or not plugins:
        raise ConfigError("config key 'plugins' is required: a mapping of plugin name to {type: ...}")
    for name, options in plugins.items():
        if not isinstance(options, dict) or not isinstance(options.get("type"), str):
            raise ConfigError(f"plugin {name!r} needs a 'type' (builtin, stepflow or mock)")
    routes = data.get("routes")
    if not isinstance(routes, dict):
        raise ConfigError("config key 'routes' is required: a mapping of path pattern to a list of rules (may be {})")
    store = data.get("stateStore") or {"type": "inMemory"}
    store_type = store.get("type")
    if store_type not in ("inMemory", "sqlite"):
        raise ConfigError(f"stateStore.type must be inMemory or sqlite, got {store_type!r}")
    if store_type == "sqlite" and not isinstance(store.get("databaseUrl"), str):
        raise ConfigError("stateStore.databaseUrl is required for sqlite, e.g. sqlite:/data/stepflow.db")
    working = Path(data.get("workingDirectory") or base_dir)
    return RuntimeSettings(
        plugins=plugins,
        routes=routes,
        state_store=store_type,
        database_path=store.get("databaseUrl"),
        max_runs=int(_positive(store, "maxRuns", 10_000, "stateStore")),
        max_age_seconds=_positive(store, "maxAgeSeconds", 3600.0, "stateStore"),
        working_directory=working if working.is_absolute() else base_dir / working,
        step_attempts=int(_positive(data, "stepAttempts", 3, "config")),
        limits=_limits(data),
    )


def load_settings(path: str | None) -> RuntimeSettings:
    """From ``path``, else ``STEPFLOW_CONFIG``, else the builtins-only default."""
    path = path or os.environ.get("STEPFLOW_CONFIG")
    if not path:
        return settings_from_data(DEFAULT_CONFIG, Path.cwd())
    config_path = Path(path)
    try:
        text = config_path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {error}") from None
    return settings_from_data(data, config_path.resolve().parent)
