"""Component routing (config.md §3): path patterns with matchit's precedence, then rules.

Pure: built from the config's ``routes`` once, asked per step with the component path
and the step's resolved input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime_server.flow.paths import MISSING, PathSyntaxError, parse_path

_STATIC, _PARAM, _CATCH_ALL = 2, 1, 0
_REMEMBERED_NAMES = 4096


class RouteConfigError(ValueError):
    pass


class RoutingError(Exception):
    pass


@dataclass(frozen=True)
class Condition:
    path: Any
    value: Any


@dataclass(frozen=True)
class Rule:
    plugin: str
    conditions: tuple[Condition, ...] = ()
    component: str | None = None
    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    plugin: str
    component: str
    """The name the plugin sees, e.g. ``/double`` for ``/python/double``."""


@dataclass
class _Pattern:
    text: str
    segments: list[tuple[int, str]]
    rules: list[Rule] = field(default_factory=list)

    @property
    def rank(self) -> tuple[int, ...]:
        return tuple(kind for kind, _ in self.segments)

    @property
    def shape(self) -> tuple[tuple[int, str], ...]:
        return tuple((kind, text if kind == _STATIC else "") for kind, text in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        captured: dict[str, str] = {}
        for position, (kind, text) in enumerate(self.segments):
            if kind == _CATCH_ALL:
                rest = "/".join(parts[position:])
                if not rest:
                    return None
                captured[text] = rest
                return captured
            if position >= len(parts) or not parts[position]:
                return None
            if kind == _STATIC and parts[position] != text:
                return None
            if kind == _PARAM:
                captured[text] = parts[position]
        return captured if len(parts) == len(self.segments) else None


def _parse_pattern(text: str) -> list[tuple[int, str]]:
    if not text.startswith("/"):
        raise RouteConfigError(f"route pattern {text!r} must start with '/'")
    segments: list[tuple[int, str]] = []
    raw = text[1:].split("/")
    for index, segment in enumerate(raw):
        if segment.startswith("{*") and segment.endswith("}"):
            if index != len(raw) - 1:
                raise RouteConfigError(f"route pattern {text!r}: a catch-all {{*name}} must be the last segment")
            segments.append((_CATCH_ALL, segment[2:-1]))
        elif segment.startswith("{") and segment.endswith("}"):
            segments.append((_PARAM, segment[1:-1]))
        elif "{" in segment or "}" in segment:
            raise RouteConfigError(f"route pattern {text!r}: a parameter must fill a whole segment")
        else:
            segments.append((_STATIC, segment))
    return segments


def _parse_rule(pattern: str, data: Any, plugins: set[str]) -> Rule:
    if not isinstance(data, dict) or not isinstance(data.get("plugin"), str):
        raise RouteConfigError(f"route {pattern!r}: each rule needs a 'plugin' name")
    if data["plugin"] not in plugins:
        raise RouteConfigError(f"route {pattern!r} names plugin {data['plugin']!r}, which is not configured (plugins: {', '.join(sorted(plugins))})")
    conditions = []
    for condition in data.get("conditions") or []:
        try:
            conditions.append(Condition(parse_path(condition["path"]), condition.get("value")))
        except (KeyError, TypeError, PathSyntaxError) as error:
            raise RouteConfigError(f"route {pattern!r}: bad condition {condition!r}: {error}") from None
    allow = data.get("componentAllow")
    return Rule(
        plugin=data["plugin"],
        conditions=tuple(conditions),
        component=data.get("component"),
        allow=frozenset(allow) if allow is not None else None,
        deny=frozenset(data.get("componentDeny") or ()),
    )


class Router:
    def __init__(self, routes: dict[str, Any], plugins: set[str]) -> None:
        self._patterns: list[_Pattern] = []
        shapes: dict[tuple[tuple[int, str], ...], str] = {}
        for text, rules in (routes or {}).items():
            pattern = _Pattern(text, _parse_pattern(text))
            if pattern.shape in shapes:
                raise RouteConfigError(f"route patterns {shapes[pattern.shape]!r} and {text!r} conflict: they match the same paths")
            shapes[pattern.shape] = text
            if not isinstance(rules, list) or not rules:
                raise RouteConfigError(f"route {text!r} needs a list of rules")
            pattern.rules = [_parse_rule(text, rule, plugins) for rule in rules]
            self._patterns.append(pattern)
        self._patterns.sort(key=lambda pattern: pattern.rank, reverse=True)
        self._by_name: dict[str, Route | None] = {}
        """Routes decided by the name alone (None: a rule looks at the input), asked for every step of every run."""

    @property
    def patterns(self) -> list[str]:
        return [pattern.text for pattern in self._patterns]

    def route(self, component: str, step_input: Any) -> Route:
        route = self.route_by_name(component)
        if route is not None:
            return route
        pattern, captured = self._match(component)
        return self._choose(pattern, captured, component, step_input)

    def route_by_name(self, component: str) -> Route | None:
        """The route when the name alone decides it (None if a rule looks at the input), so a
        flow naming a component nothing serves can be refused before it runs."""
        if component in self._by_name:
            return self._by_name[component]
        pattern, captured = self._match(component)
        route = None if any(rule.conditions for rule in pattern.rules) else self._choose(pattern, captured, component, None)
        if len(self._by_name) < _REMEMBERED_NAMES:
            self._by_name[component] = route
        return route

    def _match(self, component: str) -> tuple[_Pattern, dict[str, str]]:
        if component.startswith("/"):
            parts = component[1:].split("/")
            for pattern in self._patterns:
                captured = pattern.match(parts)
                if captured is not None:
                    return pattern, captured
        tried = ", ".join(self.patterns) or "none configured"
        raise RoutingError(f"no route matches component '{component}' (routes tried: {tried})")

    def _choose(self, pattern: _Pattern, captured: dict[str, str], component: str, step_input: Any) -> Route:
        if len(pattern.rules) == 1 and not pattern.rules[0].conditions:
            rule = pattern.rules[0]
            return Route(rule.plugin, _target(rule, captured, pattern.text))
        for rule in pattern.rules:
            if not _conditions_hold(rule, step_input, component):
                continue
            name = _target(rule, captured, pattern.text)
            if name in rule.deny or (rule.allow is not None and name not in rule.allow):
                continue
            return Route(rule.plugin, name)
        raise RoutingError(f"component '{component}' matched route '{pattern.text}' but none of its {len(pattern.rules)} rules accepted this input")


def _conditions_hold(rule: Rule, step_input: Any, component: str) -> bool:
    for condition in rule.conditions:
        value = condition.path.lookup(step_input)
        if value is MISSING:
            raise RoutingError(f"route condition path {condition.path.text} is missing from the input of component '{component}'")
        if value != condition.value:
            return False
    return True


def _target(rule: Rule, captured: dict[str, str], pattern: str) -> str:
    if rule.component is not None:
        name = rule.component
        for key, value in captured.items():
            name = name.replace("{" + key + "}", value)
        return name
    if "component" not in captured:
        raise RoutingError(f"route '{pattern}' has no {{component}} parameter and its rule sets no 'component' name")
    return "/" + captured["component"]
