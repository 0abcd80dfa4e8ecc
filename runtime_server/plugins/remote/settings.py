"""Deadlines and retry budgets of the remote plugin, from the plugin's config entry.

Upstream has no timeout at all (protocol.md §3); ours bounds every call. The limits
live in the plugin's entry; keys are camelCase like the rest of the config, all optional:

``connectTimeoutSeconds`` (opening a connection), ``idleTimeoutSeconds`` (silence on an
SSE stream while no callback of ours is pending), ``totalTimeoutSeconds`` (one execution,
all tries included, unless the engine passes its own deadline), ``callbackTimeoutSeconds``
(delivering one callback answer), ``connectRetries`` (extra tries when a pod cannot be
reached or answers 503), ``initializeRetrySeconds`` (the longest pause between
``initialize`` tries while the fleet is down).
"""

from __future__ import annotations

from typing import Any

import msgspec


class RemoteSettings(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    connect_timeout_seconds: float = 5.0
    idle_timeout_seconds: float = 60.0
    total_timeout_seconds: float = 300.0
    callback_timeout_seconds: float = 10.0
    connect_retries: int = 5
    initialize_retry_seconds: float = 5.0


_OPTION_KEYS = frozenset(field.encode_name for field in msgspec.structs.fields(RemoteSettings))
_PLUGIN_KEYS = frozenset({"type", "url", "urls", "command", "args", "env", "healthCheck", "workingDirectory"})


class SettingsError(ValueError):
    """A plugin entry whose deadline options cannot be used; the message names the key."""


def remote_settings(plugin_name: str, options: dict[str, Any]) -> RemoteSettings:
    """Pick this module's keys out of a plugin entry and check them."""
    chosen = {key: value for key, value in options.items() if key not in _PLUGIN_KEYS}
    unknown = sorted(set(chosen) - _OPTION_KEYS)
    if unknown:
        raise SettingsError(f"plugin {plugin_name!r}: unknown option(s) {unknown}; known: {sorted(_OPTION_KEYS)}")
    try:
        settings = msgspec.convert(chosen, RemoteSettings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"plugin {plugin_name!r}: {exc}") from None
    for field in msgspec.structs.fields(RemoteSettings):
        if getattr(settings, field.name) < 0:
            raise SettingsError(f"plugin {plugin_name!r}: {field.encode_name} must not be negative")
    return settings
