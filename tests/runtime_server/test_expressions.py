"""Paths and value expressions as pure code: table tests of parsing and resolution."""

from __future__ import annotations

from typing import Any

import pytest

from runtime_server.flow.expressions import ExpressionError, parse_expr
from runtime_server.flow.paths import MISSING, PathSyntaxError, parse_path
from runtime_server.flow.results import Failed, failed
from runtime_server.flow.scheduler import ItemScope


@pytest.mark.parametrize(
    ("text", "normalised", "parts"),
    [
        (None, "$", ()),
        ("", "$", ()),
        ("$", "$", ()),
        ("result", "$.result", ("result",)),
        ("a.b", "$.a.b", ("a", "b")),
        ("$.a[0].name", "$.a[0].name", ("a", 0, "name")),
        ('$["key with space"]', '$["key with space"]', ("key with space",)),
        ("$['k']", "$.k", ("k",)),
        (" $.blob_id ", "$.blob_id", ("blob_id",)),
    ],
)
def test_paths_parse_and_normalise(text: str | None, normalised: str, parts: tuple[Any, ...]) -> None:
    path = parse_path(text)
    assert path.text == normalised
    assert path.parts == parts


@pytest.mark.parametrize("text", ["$.", "$[x]", "$.a[", "$[-1]", "$a"])
def test_bad_paths_are_rejected(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(text)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("$.a.b", {"a": {"b": 1}}, 1),
        ("$.a[1]", {"a": [5, 6]}, 6),
        ("$.a[2]", {"a": [5, 6]}, MISSING),
        ("$.a.b", {"a": 3}, MISSING),
        ("$.a[0]", {"a": {"0": 1}}, MISSING),
        ("$", 7, 7),
    ],
)
def test_path_lookup(path: str, value: Any, expected: Any) -> None:
    assert parse_path(path).lookup(value) is expected or parse_path(path).lookup(value) == expected


def scope(item_input: Any = None, outcomes: dict[str, Any] | None = None, variables: dict[str, Any] | None = None) -> ItemScope:
    item = ItemScope(item_input, variables or {})
    item.outcomes.update(outcomes or {})
    return item


STEP_FAILURE = failed(500, 'step "a" failed')

RESOLUTION_TABLE: list[tuple[str, Any, ItemScope, Any]] = [
    ("input whole", {"$input": "$"}, scope({"x": 1}), {"x": 1}),
    ("input bare path is nested", {"$input": "a.b"}, scope({"a": {"b": 2}}), 2),
    ("input missing", {"$input": "x"}, scope({}), failed(1, "Input path $.x not found")),
    ("step with path", {"$step": "a", "path": "result"}, scope(outcomes={"a": {"result": 6}}), 6),
    ("step null output with path is null", {"$step": "a", "path": "x"}, scope(outcomes={"a": None}), None),
    ("step path missing", {"$step": "a", "path": "$.x"}, scope(outcomes={"a": {}}), failed(1, "Path $.x not found")),
    ("step failure propagates", {"$step": "a", "path": "x"}, scope(outcomes={"a": STEP_FAILURE}), STEP_FAILURE),
    ("literal is verbatim", {"$literal": {"$step": "a"}}, scope(), {"$step": "a"}),
    ("unknown $ key is ordinary", {"$custom": 1}, scope(), {"$custom": 1}),
    ("$literal wins over $step", {"$literal": 1, "$step": "a"}, scope(), 1),
    ("variable", {"$variable": "name"}, scope(variables={"name": "v"}), "v"),
    ("variable sub path", {"$variable": "cfg.port"}, scope(variables={"cfg": {"port": 80}}), 80),
    ("variable default", {"$variable": "nope", "default": {"$input": "x"}}, scope({"x": 3}), 3),
    ("variable undefined", {"$variable": "nope"}, scope(), failed(1, "Undefined variable: nope")),
    ("coalesce skips nulls", {"$coalesce": [None, {"$input": "b"}, 3]}, scope({"b": None}), 3),
    ("coalesce all null", {"$coalesce": [None, None]}, scope(), None),
    ("coalesce returns failure", {"$coalesce": [{"$input": "x"}, 3]}, scope({}), failed(1, "Input path $.x not found")),
    ("if truthy zero", {"$if": 0, "then": "t", "else": "e"}, scope(), "t"),
    ("if false", {"$if": False, "then": "t", "else": "e"}, scope(), "e"),
    ("if null no else", {"$if": None, "then": "t"}, scope(), None),
    ("if failed condition counts as false", {"$if": {"$input": "x"}, "then": "t", "else": "e"}, scope({}), "e"),
    ("template keeps key order", {"b": {"$input": "b"}, "a": 1}, scope({"b": 2}), {"b": 2, "a": 1}),
    ("template fails on first failure", [1, {"$input": "x"}], scope({}), failed(1, "Input path $.x not found")),
    ("strings are never interpolated", "$input", scope(), "$input"),
]


@pytest.mark.parametrize(("name", "expression", "item", "expected"), RESOLUTION_TABLE, ids=[row[0] for row in RESOLUTION_TABLE])
def test_resolution(name: str, expression: Any, item: ItemScope, expected: Any) -> None:
    assert parse_expr(expression).resolve(item) == expected


LAZY_TABLE: list[tuple[str, Any, ItemScope, list[str]]] = [
    ("template needs every step", {"a": {"$step": "s1"}, "b": [{"$step": "s2"}]}, scope(), ["s1", "s2"]),
    ("done steps are not needed", {"a": {"$step": "s1"}}, scope(outcomes={"s1": 1}), []),
    ("if needs only its condition first", {"$if": {"$step": "c"}, "then": {"$step": "t"}, "else": {"$step": "e"}}, scope(), ["c"]),
    ("if then branch", {"$if": {"$step": "c"}, "then": {"$step": "t"}, "else": {"$step": "e"}}, scope(outcomes={"c": True}), ["t"]),
    ("if else branch", {"$if": {"$step": "c"}, "then": {"$step": "t"}, "else": {"$step": "e"}}, scope(outcomes={"c": None}), ["e"]),
    ("coalesce left to right", {"$coalesce": [{"$step": "a"}, {"$step": "b"}]}, scope(), ["a"]),
    ("coalesce moves on past null", {"$coalesce": [{"$step": "a"}, {"$step": "b"}]}, scope(outcomes={"a": None}), ["b"]),
    ("coalesce stops at a value", {"$coalesce": [{"$step": "a"}, {"$step": "b"}]}, scope(outcomes={"a": 1}), []),
    ("coalesce stops at a failure", {"$coalesce": [{"$step": "a"}, {"$step": "b"}]}, scope(outcomes={"a": STEP_FAILURE}), []),
    ("variable default needed only when missing", {"$variable": "v", "default": {"$step": "d"}}, scope(variables={"v": 1}), []),
]


@pytest.mark.parametrize(("name", "expression", "item", "needed"), LAZY_TABLE, ids=[row[0] for row in LAZY_TABLE])
def test_demand_is_lazy(name: str, expression: Any, item: ItemScope, needed: list[str]) -> None:
    assert parse_expr(expression).demand(item) == needed


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"$step": 3}, "$step must be a step id string"),
        ({"$input": 3}, "$input must be a path string or null"),
        ({"$if": True}, "$if needs a 'then' branch"),
        ({"$coalesce": {"a": 1}}, "$coalesce takes a list"),
        ({"$step": "a", "path": "$["}, "unclosed"),
    ],
)
def test_expression_parse_errors_name_the_problem(expression: Any, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expr({"x": expression}, "$.steps[0].input")
    assert message in caught.value.message
    assert caught.value.location == "$.steps[0].input.x"


def test_normalised_form_round_trips() -> None:
    source = {"a": {"$input": "value"}, "b": {"$step": "s", "path": "result"}, "c": {"$literal": {"$step": "x"}}, "d": [1, {"$variable": "v", "default": 0}]}
    expected = {
        "a": {"$input": "$.value"},
        "b": {"$step": "s", "path": "$.result"},
        "c": {"$literal": {"$step": "x"}},
        "d": [1, {"$variable": "$.v", "default": 0}],
    }
    assert parse_expr(source).to_json() == expected
    assert parse_expr(expected).to_json() == expected


def test_failed_is_not_a_value() -> None:
    assert isinstance(parse_expr({"$input": "x"}).resolve(scope({})), Failed)
