"""Which proxy URL a call goes to when the plugin has several (``urls:``, our extension).

On one machine there is no Kubernetes Service spreading connections over the proxies, so
the plugin spreads executions itself: round robin, and a try that could not reach its URL
moves on to the next one. Pure: the plugin owns the only mutable counter.
"""

from __future__ import annotations

import itertools
from typing import Any

from runtime_server.plugins.remote.settings import SettingsError

_SCHEMES = ("http://", "https://")


def plugin_urls(plugin_name: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The entry's ``url`` (upstream's key) or ``urls`` (ours): exactly one of them."""
    has_url, has_urls = "url" in options, "urls" in options
    if has_url and has_urls:
        raise SettingsError(f"plugin {plugin_name!r}: give either 'url' or 'urls', not both")
    if has_urls:
        urls = options["urls"]
        if not isinstance(urls, list) or not urls:
            raise SettingsError(f"plugin {plugin_name!r}: 'urls' must be a non-empty list of http:// or https:// URLs, got {urls!r}")
        for index, url in enumerate(urls):
            _check(plugin_name, f"urls[{index}]", url)
        return tuple(urls)
    return (_check(plugin_name, "url", options.get("url")),)


def _check(plugin_name: str, key: str, url: Any) -> str:
    if not isinstance(url, str) or not url.startswith(_SCHEMES):
        raise SettingsError(f"plugin {plugin_name!r}: '{key}' must be an http:// or https:// URL, got {url!r}")
    return url


class Rotation:
    """Round robin over a fixed list: ``take`` for a new execution, ``after`` for a retry."""

    __slots__ = ("_turns", "urls")

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.urls = urls
        self._turns = itertools.cycle(range(len(urls)))

    def take(self) -> int:
        return next(self._turns)

    def after(self, index: int) -> int:
        return (index + 1) % len(self.urls)
