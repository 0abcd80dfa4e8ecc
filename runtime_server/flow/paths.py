"""JSON paths as flows write them (flows.md §2.1): ``$``, ``$.a.b``, ``$.a[0]``, ``$["k"]``, or a bare ``a.b``."""

from __future__ import annotations

import re
from typing import Any

_MISSING = object()
_BARE_FIELD = re.compile(r"[^.\[\]]+")


class PathSyntaxError(ValueError):
    pass


class JsonPath:
    """A parsed path: a tuple of keys (str) and indexes (int), with its normalised text."""

    __slots__ = ("parts", "text")

    def __init__(self, parts: tuple[str | int, ...]) -> None:
        self.parts = parts
        self.text = _render(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonPath) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"JsonPath({self.text!r})"

    @property
    def is_root(self) -> bool:
        return not self.parts

    def lookup(self, value: Any) -> Any:
        """The value at this path, or ``MISSING`` when a key/index does not exist."""
        for part in self.parts:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    return _MISSING
                value = value[part]
            else:
                if not isinstance(value, dict):
                    return _MISSING
                value = value.get(part, _MISSING)
                if value is _MISSING:
                    return _MISSING
        return value


MISSING = _MISSING


def parse_path(text: str | None) -> JsonPath:
    """Parse a path; a string not starting with ``$`` reads as if ``$.`` came first."""
    if text is None:
        return ROOT
    if not isinstance(text, str):
        raise PathSyntaxError(f"path must be a string, got {type(text).__name__}")
    source = text.strip()
    if source in ("", "$"):
        return ROOT
    rest = source[1:] if source.startswith("$") else "." + source
    return JsonPath(tuple(_parse_parts(rest, text)))


def _parse_parts(rest: str, original: str) -> list[str | int]:
    parts: list[str | int] = []
    position = 0
    while position < len(rest):
        char = rest[position]
        if char == ".":
            match = _BARE_FIELD.match(rest, position + 1)
            if match is None:
                raise PathSyntaxError(f"invalid path {original!r}: expected a field name after '.' at {position}")
            parts.append(match.group())
            position = match.end()
        elif char == "[":
            end, part = _parse_bracket(rest, position, original)
            parts.append(part)
            position = end
        else:
            raise PathSyntaxError(f"invalid path {original!r}: unexpected {char!r} at {position}")
    return parts


def _parse_bracket(rest: str, start: int, original: str) -> tuple[int, str | int]:
    close = rest.find("]", start)
    if close < 0:
        raise PathSyntaxError(f"invalid path {original!r}: unclosed '['")
    inner = rest[start + 1 : close].strip()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return close + 1, inner[1:-1]
    if inner.isdigit():
        return close + 1, int(inner)
    raise PathSyntaxError(f"invalid path {original!r}: brackets take a non-negative integer or a quoted key, got [{inner}]")


def _render(parts: tuple[str | int, ...]) -> str:
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _BARE_FIELD.fullmatch(part) and " " not in part and '"' not in part:
            out.append("." + part)
        else:
            out.append('["' + part.replace('"', '\\"') + '"]')
    return "".join(out)


ROOT = JsonPath(())
