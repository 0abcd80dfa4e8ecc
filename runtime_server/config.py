"""Runtime configuration (config.md): the YAML/JSON file plus command line and environment.

Upstream keys are camelCase and unknown keys are ignored. The store is upstream 0.13's
``storageConfig`` (``type``: inMemory, sqlite or postgres, ``databaseUrl`` with ``${VAR}``
from the environment, ``autoMigrate``; or the expanded form with ``metadata``/``blobs``/
``journal``, which must name one database here); 0.9's ``stateStore`` is an alias.
Extensions (docs/limits.md): the store takes ``maxRuns``/``maxAgeSeconds`` (retention); ``stepAttempts`` bounds how
often a step is re-run after a retriable transport failure (deadlines are per plugin, in
its entry); ``limits`` bounds what one API request may ask for; with no config file the
builtins are routed at ``/{*component}`` and ``/builtin/{*component}`` (upstream routes nothing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime_server.nulls import without_nulls
from runtime_server.runs.database_url import DatabaseUrlError, store_type_of, substitute

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


STORE_TYPES = ("inMemory", "sqlite", "postgres")
_RETENTION_DEFAULTS = {"inMemory": (10_000, 3600.0), "sqlite": (1_000_000, 7 * 86400.0), "postgres": (1_000_000, 7 * 86400.0)}
"""(maxRuns, maxAgeSeconds) by store type: memory holds an hour, a database a week."""


@dataclass(frozen=True)
class StoreSettings:
    type: str = "inMemory"
    database_url: str | None = None
    """With ``${VAR}`` substituted; may hold a password, so never log it (database_url.redact)."""
    auto_migrate: bool = True
    max_runs: int = 10_000
    max_age_seconds: float = 3600.0

    @property
    def durable(self) -> bool:
        return self.type != "inMemory"


@dataclass(frozen=True)
class RecoverySettings:
    """Upstream 0.13's ``recovery``: resuming a restarted runtime's runs, and failing over a dead
    replica's (docs/durable-runs.md). The defaults fail a replica over within 10 s."""

    enabled: bool = True
    lease_ttl_seconds: float = 6.0
    """A replica's lease lasts this long unless renewed (every third of it)."""
    check_interval_seconds: float = 1.0
    """How often a replica looks for expired peers whose runs to take."""
    max_startup_recovery: int = 10_000
    """Runs resumed at once at start; the rest follow at the next checks."""
    max_claims_per_check: int = 1000
    """Runs of an expired peer taken in one check."""


_RECOVERY_KEYS = {
    "leaseTtlSecs": "lease_ttl_seconds",
    "checkIntervalSecs": "check_interval_seconds",
    "maxStartupRecovery": "max_startup_recovery",
    "maxClaimsPerCheck": "max_claims_per_check",
}


@dataclass(frozen=True)
class RuntimeSettings:
    plugins: dict[str, dict[str, Any]]
    routes: dict[str, Any]
    store: StoreSettings = field(default_factory=StoreSettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    working_directory: Path = field(default_factory=Path.cwd)
    step_attempts: int = 3
    """Runs of a step when the transport fails retriably (each may land on another pod)."""
    limits: ApiLimits = field(default_factory=ApiLimits)


def _positive(section: dict[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key)
    if value is None:  # absent or null
        value = default
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
    data = without_nulls(data)
    plugins = data.get("plugins")
    if not isinstance(plugins, dict) or not plugins:
        raise ConfigError("config key 'plugins' is required: a mapping of plugin name to {type: ...}")
    for name, options in plugins.items():
        if not isinstance(options, dict) or not isinstance(options.get("type"), str):
            raise ConfigError(f"plugin {name!r} needs a 'type' (builtin, stepflow or mock)")
    plugins = {name: without_nulls(options) for name, options in plugins.items()}
    routes = data.get("routes")
    if not isinstance(routes, dict):
        raise ConfigError("config key 'routes' is required: a mapping of path pattern to a list of rules (may be {})")
    working = Path(data.get("workingDirectory") or base_dir)
    return RuntimeSettings(
        plugins=plugins,
        routes=routes,
        store=store_settings(data, os.environ),
        recovery=_recovery(data),
        working_directory=working if working.is_absolute() else base_dir / working,
        step_attempts=int(_positive(data, "stepAttempts", 3, "config")),
        limits=_limits(data),
    )


def store_settings(data: dict[str, Any], environment: Mapping[str, str]) -> StoreSettings:
    """``storageConfig`` (or ``stateStore``), simple or expanded, checked and with ``${VAR}`` substituted."""
    key = "storageConfig" if data.get("storageConfig") is not None else "stateStore"
    section = data.get(key) or {"type": "inMemory"}
    if not isinstance(section, dict):
        raise ConfigError(f"{key} must be a mapping such as {{type: sqlite, databaseUrl: 'sqlite:/data/stepflow.db'}}, got {section!r}")
    store = _one_store(section, key)
    store_type = store.get("type")
    url = store.get("databaseUrl")
    if store_type is None and isinstance(url, str):
        store_type = _type_of(url, key)
    if store_type not in STORE_TYPES:
        raise ConfigError(f"{key}.type must be one of {', '.join(STORE_TYPES)}, got {store_type!r}")
    if store_type != "inMemory":
        if not isinstance(url, str) or not url:
            example = "sqlite:/data/stepflow.db?mode=rwc" if store_type == "sqlite" else "postgresql://user:${PGPASSWORD}@host:5432/stepflow"
            raise ConfigError(f"{key}.databaseUrl is required for {store_type}, e.g. {example}")
        try:
            url = substitute(url, environment)
        except DatabaseUrlError as error:
            raise ConfigError(f"{key}: {error}") from None
        if _type_of(url, key) != store_type:
            raise ConfigError(f"{key}.type is {store_type} but databaseUrl is a {_type_of(url, key)} URL")
    auto_migrate = store.get("autoMigrate", True)
    if not isinstance(auto_migrate, bool):
        raise ConfigError(f"{key}.autoMigrate must be true or false, got {auto_migrate!r}")
    runs_default, age_default = _RETENTION_DEFAULTS[store_type]
    return StoreSettings(
        type=store_type,
        database_url=url if store_type != "inMemory" else None,
        auto_migrate=auto_migrate,
        max_runs=int(_positive(store, "maxRuns", runs_default, key)),
        max_age_seconds=_positive(store, "maxAgeSeconds", age_default, key),
    )


def _recovery(data: dict[str, Any]) -> RecoverySettings:
    section = data.get("recovery") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"recovery must be a mapping such as {{enabled: true, leaseTtlSecs: 6}}, got {section!r}")
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"recovery.enabled must be true or false, got {enabled!r}")
    defaults = RecoverySettings()
    values = {name: _positive(section, key, getattr(defaults, name), "recovery") for key, name in _RECOVERY_KEYS.items()}
    if values["check_interval_seconds"] > values["lease_ttl_seconds"]:
        raise ConfigError("recovery.checkIntervalSecs must not exceed recovery.leaseTtlSecs: a dead replica's runs would wait longer than its lease")
    return RecoverySettings(
        enabled=enabled,
        lease_ttl_seconds=values["lease_ttl_seconds"],
        check_interval_seconds=values["check_interval_seconds"],
        max_startup_recovery=int(values["max_startup_recovery"]),
        max_claims_per_check=int(values["max_claims_per_check"]),
    )


def _one_store(section: dict[str, Any], key: str) -> dict[str, Any]:
    """The expanded form (metadata/blobs/journal) must name one store here: runs, their journal
    and blobs are written in one transaction, so they live in one database."""
    parts = {part: section[part] for part in ("metadata", "blobs", "journal") if section.get(part) is not None}
    if not parts:
        return section
    for part, value in parts.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{key}.{part} must be a mapping such as {{type: postgres, databaseUrl: ...}}, got {value!r}")
    distinct = {(value.get("type"), value.get("databaseUrl")) for value in parts.values()}
    if len(distinct) > 1:
        raise ConfigError(f"{key}: metadata, blobs and journal must name the same store here (one database keeps runs, journal and blobs in one transaction)")
    merged = {k: v for k, v in section.items() if k not in parts}
    return {**merged, **next(iter(parts.values()))}


def _type_of(url: str, key: str) -> str:
    try:
        return store_type_of(url)
    except DatabaseUrlError as error:
        raise ConfigError(f"{key}: {error}") from None


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
