"""Plugin ``type`` → factory. ``stepflow`` is imported lazily, by name, so the core starts
(and reports a clear error) even when the remote plugin module is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime_server.config import ConfigError, RuntimeSettings
from runtime_server.plugins.base import Plugin

if TYPE_CHECKING:
    from runtime_server.runtime import Runtime

Factory = Callable[[str, dict[str, Any], RuntimeSettings, "Runtime"], Plugin]

_LAZY: dict[str, str] = {"stepflow": "runtime_server.plugins.stepflow_http:create_plugin"}


def _builtin(name: str, options: dict[str, Any], settings: RuntimeSettings, runtime: Runtime) -> Plugin:
    from runtime_server.plugins.builtin import BuiltinPlugin

    return BuiltinPlugin(name, runtime)


def _mock(name: str, options: dict[str, Any], settings: RuntimeSettings, runtime: Runtime) -> Plugin:
    from runtime_server.plugins.mock import MockPlugin

    return MockPlugin(name, options)


_FACTORIES: dict[str, Factory] = {"builtin": _builtin, "mock": _mock}


def _lazy_factory(kind: str) -> Factory:
    module_name, _, attribute = _LAZY[kind].partition(":")
    try:
        create = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"plugin type {kind!r} is not available in this build ({module_name}: {error})") from None
    return lambda name, options, settings, runtime: create(name, options, settings)


def create_plugins(settings: RuntimeSettings, runtime: Runtime) -> dict[str, Plugin]:
    plugins: dict[str, Plugin] = {}
    for name, options in settings.plugins.items():
        kind = options["type"]
        if kind in _FACTORIES:
            factory = _FACTORIES[kind]
        elif kind in _LAZY:
            factory = _lazy_factory(kind)
        else:
            raise ConfigError(f"plugin {name!r} has unknown type {kind!r} (known: {', '.join(sorted([*_FACTORIES, *_LAZY]))})")
        try:
            plugins[name] = factory(name, options, settings, runtime)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return plugins
