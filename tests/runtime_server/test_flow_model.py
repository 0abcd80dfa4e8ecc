"""Flow parsing, validation, overrides, scheduling and routing: pure code, table tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime_server.flow.model import FlowParseError, parse_flow
from runtime_server.flow.overrides import OverrideError, apply_overrides
from runtime_server.flow.prepared import prepare
from runtime_server.flow.scheduler import ItemScope, demanded_ready_steps, ready_steps
from runtime_server.flow.validation import dependencies, validate
from runtime_server.routing import RouteConfigError, Router, RoutingError

DEMO = Path(__file__).resolve().parents[2] / "demo" / "workflows"

DEMO_DEPENDENCIES = {
    "simple-test-workflow.yaml": {"double_it": [], "square_it": ["double_it"], "add_them": ["square_it"]},
    "bidirectional-test-workflow.yaml": {"blob_test": []},
    "parallel-bidirectional-test.yaml": {"blob_test_1": [], "blob_test_2": [], "blob_test_3": []},
    "batch-workflow.yaml": {"process": [], "fibonacci": ["process"], "square": ["fibonacci"]},
}


@pytest.mark.parametrize("file_name", sorted(DEMO_DEPENDENCIES))
def test_demo_flows_parse_validate_and_report_dependencies(file_name: str) -> None:
    flow = parse_flow(yaml.safe_load((DEMO / file_name).read_text()))
    diagnostics = validate(flow)
    assert diagnostics.num_fatal == 0 and diagnostics.num_error == 0, diagnostics
    assert dependencies(flow) == DEMO_DEPENDENCIES[file_name]


def test_demo_parallel_flow_starts_all_three_steps_at_once() -> None:
    flow = parse_flow(yaml.safe_load((DEMO / "parallel-bidirectional-test.yaml").read_text()))
    assert ready_steps(prepare("id", flow, flow.to_json()), ItemScope({"workflow_id": 1}, {}), set()) == [0, 1, 2]


def _flow(steps: list[dict[str, Any]], output: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": "t", "description": "d", "steps": steps, "output": output, **extra}


PARSE_ERRORS = [
    ("steps as a mapping", {"steps": {"a": {"component": "/x"}}}, "$.steps", "pre-v1 layout"),
    ("step without component", _flow([{"id": "a"}]), "$.steps[0].component", "'component' is required"),
    (
        "unknown onError action",
        _flow([{"id": "a", "component": "/x", "onError": {"action": "skip"}}]),
        "$.steps[0].onError.action",
        "unknown onError action 'skip'",
    ),
    (
        "bad retry count",
        _flow([{"id": "a", "component": "/x", "onError": {"action": "retry", "maxAttempts": 0}}]),
        "$.steps[0].onError.maxAttempts",
        "maxAttempts",
    ),
    ("bad expression", _flow([{"id": "a", "component": "/x", "input": {"v": {"$step": 1}}}]), "$.steps[0].input.v", "$step must be"),
    ("bad path", _flow([], {"x": {"$input": "$.["}}), "$.output.x", "invalid path"),
    ("not an object", [1, 2], "$", "must be an object"),
]


@pytest.mark.parametrize(("name", "data", "location", "message"), PARSE_ERRORS, ids=[row[0] for row in PARSE_ERRORS])
def test_parse_errors_give_location_and_reason(name: str, data: Any, location: str, message: str) -> None:
    with pytest.raises(FlowParseError) as caught:
        parse_flow(data)
    assert caught.value.location == location
    assert message in caught.value.message


VALIDATION = [
    (
        "forward reference",
        _flow([{"id": "a", "component": "/x", "input": {"$step": "b"}}, {"id": "b", "component": "/x"}], {"$step": "a"}),
        "undefinedStepReference",
        "$.steps[0].input",
    ),
    ("self reference", _flow([{"id": "a", "component": "/x", "input": {"v": {"$step": "a"}}}], {"$step": "a"}), "selfReference", "$.steps[0].input.v"),
    ("duplicate id", _flow([{"id": "a", "component": "/x"}, {"id": "a", "component": "/x"}]), "duplicateStepId", "$.steps[1].id"),
    ("empty id", _flow([{"id": "", "component": "/x"}]), "emptyStepId", "$.steps[0].id"),
    ("NUL in a step id", _flow([{"id": "a\x00", "component": "/x"}], {"$step": "a\x00"}), "nulCharacter", "$.steps[0].id"),
    ("NUL in the flow's name", _flow([], {"r": 1}, name="t\x00"), "nulCharacter", "$.name"),
    ("output references unknown step", _flow([], {"r": {"$step": "ghost"}}), "undefinedStepReference", "$.output.r"),
]


@pytest.mark.parametrize(("name", "data", "kind", "path"), VALIDATION, ids=[row[0] for row in VALIDATION])
def test_fatal_diagnostics_name_the_step_and_path(name: str, data: Any, kind: str, path: str) -> None:
    diagnostics = validate(parse_flow(data))
    fatal = diagnostics.fatal
    assert [(d.kind, d.path, d.level) for d in fatal] == [(kind, path, "fatal")]
    assert diagnostics.num_fatal == 1


NON_FATAL = [
    (
        "step nothing needs",
        _flow([{"id": "a", "component": "/x"}, {"id": "b", "component": "/x"}], {"$step": "a"}),
        [("unreachableStep", 1000, "warning", "$.steps[1]", {"step_id": "b"})],
    ),
    ("needed through another step", _flow([{"id": "a", "component": "/x"}, {"id": "b", "component": "/x", "input": {"$step": "a"}}], {"$step": "b"}), []),
    ("mustExecute step nothing needs", _flow([{"id": "a", "component": "/x"}, {"id": "b", "component": "/x", "mustExecute": True}], {"$step": "a"}), []),
    (
        "component without a leading slash",
        _flow([{"id": "a", "component": "x"}], {"$step": "a"}),
        [("invalidComponent", 2500, "error", "$.steps[0].component", {"step_id": "a", "component": "x", "error": "Component path must start with '/'"})],
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), NON_FATAL, ids=[row[0] for row in NON_FATAL])
def test_non_fatal_diagnostics_match_upstreams(name: str, data: Any, expected: list[tuple[str, int, str, str, dict[str, str]]]) -> None:
    """Kinds, codes and ``data`` keys as stepflow-server 0.9.0 reports them (tests/interop compares the rest live)."""
    found = [(d.kind, d.code, d.level, d.path, d.data) for d in validate(parse_flow(data)).diagnostics if not d.kind.startswith("missingFlow")]
    assert found == expected


def test_warnings_for_missing_name_and_description_do_not_block() -> None:
    diagnostics = validate(parse_flow({"steps": []}))
    assert {d.kind for d in diagnostics.diagnostics} == {"missingFlowName", "missingFlowDescription"}
    assert diagnostics.num_fatal == 0 and diagnostics.num_warning == 2


def test_unknown_keys_are_ignored_and_normalised_form_drops_them() -> None:
    flow = parse_flow(
        {
            "schema": "https://stepflow.org/schemas/v1/flow.json",
            "name": "n",
            "steps": [{"id": "a", "component": "/x", "skipIf": True, "input": {"$input": "v"}}],
            "output": {"$step": "a"},
        }
    )
    assert flow.to_json() == {"name": "n", "steps": [{"id": "a", "component": "/x", "input": {"$input": "$.v"}}], "output": {"$step": "a"}}


def test_overrides_merge_patch_a_step_and_reject_unknown_steps() -> None:
    flow = _flow([{"id": "a", "component": "/x", "input": {"value": 1, "keep": 2}}], {"$step": "a"})
    patched = apply_overrides(flow, {"a": {"value": {"input": {"value": 10, "keep": None}, "component": "/y"}}})
    assert patched["steps"][0] == {"id": "a", "component": "/y", "input": {"value": 10}}
    assert flow["steps"][0]["component"] == "/x"
    with pytest.raises(OverrideError, match="not in the flow"):
        apply_overrides(flow, {"ghost": {"value": {}}})
    with pytest.raises(OverrideError, match="not supported"):
        apply_overrides(flow, {"a": {"$type": "json_patch", "value": []}})


def _ready(flow_data: dict[str, Any], item_input: Any, outcomes: dict[str, Any], started: set[int]) -> list[int]:
    flow = parse_flow(flow_data)
    item = ItemScope(item_input, {})
    item.outcomes.update(outcomes)
    return ready_steps(prepare("id", flow, flow.to_json()), item, started)


CHAIN = _flow(
    [
        {"id": "a", "component": "/x"},
        {"id": "b", "component": "/x", "input": {"$step": "a"}},
        {"id": "unused", "component": "/x"},
        {"id": "side", "component": "/x", "mustExecute": True},
    ],
    {"r": {"$step": "b"}},
)
BRANCHES = _flow(
    [{"id": "cond", "component": "/x"}, {"id": "yes", "component": "/x"}, {"id": "no", "component": "/x"}],
    {"$if": {"$step": "cond"}, "then": {"$step": "yes"}, "else": {"$step": "no"}},
)
SCHEDULING = [
    ("roots first, unused never, mustExecute too", CHAIN, {}, set(), [0, 3]),
    ("started steps are not offered again", CHAIN, {}, {0, 3}, []),
    ("dependant ready once its input is done", CHAIN, {"a": 1, "side": 1}, {0, 3}, [1]),
    ("if: condition only", BRANCHES, {}, set(), [0]),
    ("if: chosen branch only", BRANCHES, {"cond": False}, {0}, [2]),
    ("no output, nothing runs", _flow([{"id": "a", "component": "/x"}]), {}, set(), []),
]


@pytest.mark.parametrize(("name", "flow", "outcomes", "started", "ready"), SCHEDULING, ids=[row[0] for row in SCHEDULING])
def test_only_needed_steps_become_ready(name: str, flow: dict[str, Any], outcomes: dict[str, Any], started: set[int], ready: list[int]) -> None:
    assert _ready(flow, {}, outcomes, started) == ready


def _plan_flows() -> list[tuple[str, dict[str, Any]]]:
    """Every flow at hand: the demo's, upstream's conformance corpus, and the tables above."""
    files = sorted(DEMO.glob("*.yaml")) + sorted((Path(__file__).resolve().parents[1] / "conformance" / "corpus").rglob("*.yaml"))
    flows = [(path.name, yaml.safe_load(path.read_text())) for path in files]
    return [(name, flow) for name, flow in flows if isinstance(flow, dict) and "steps" in flow] + [("chain", CHAIN), ("branches", BRANCHES)]


@pytest.mark.parametrize(("name", "flow_data"), _plan_flows(), ids=[name for name, _ in _plan_flows()])
def test_a_static_plan_offers_the_steps_demand_would(name: str, flow_data: dict[str, Any]) -> None:
    """Run each flow's schedule to the end (a step at a time, last ready first), comparing the
    plan's answer with the demand walk's at every point."""
    prepared = prepare("id", parse_flow(flow_data), flow_data)
    scope, started = ItemScope({}, {}), set[int]()
    while True:
        ready = demanded_ready_steps(prepared, scope, started)
        assert ready_steps(prepared, scope, started) == ready
        if not ready:
            break
        started.add(ready[-1])
        scope.outcomes[prepared.flow.steps[ready[-1]].id] = {"result": 1}


PLANS = [
    ("chain: needed steps and their needs, unused left out", CHAIN, ((0, ()), (1, ("a",)), (3, ()))),
    ("$if decides at run time", BRANCHES, None),
    ("$coalesce decides at run time", _flow([{"id": "a", "component": "/x"}], {"$coalesce": [{"$step": "a"}, 1]}), None),
    ("a $variable default may need a step", _flow([{"id": "a", "component": "/x"}], {"$variable": "v", "default": {"$step": "a"}}), None),
    ("a $variable without default needs nothing", _flow([{"id": "a", "component": "/x", "input": {"$variable": "v"}}], [{"$step": "a"}]), ((0, ()),)),
    ("a missing step is left to the demand walk", _flow([], {"$step": "ghost"}), None),
]


@pytest.mark.parametrize(("name", "flow_data", "plan"), PLANS, ids=[row[0] for row in PLANS])
def test_static_plan(name: str, flow_data: dict[str, Any], plan: Any) -> None:
    assert prepare("id", parse_flow(flow_data), flow_data).static_plan == plan


DEMO_ROUTES = {
    "/python/{*component}": [{"plugin": "remote"}],
    "/builtin/{*component}": [{"plugin": "builtin"}],
    "/{*component}": [{"plugin": "builtin"}],
    "/ai/chat": [
        {"conditions": [{"path": "$.model", "value": "gpt-4"}], "plugin": "remote", "component": "/gpt4"},
        {"plugin": "builtin", "component": "/fallback"},
    ],
    "/tools/{name}": [{"plugin": "remote", "component": "/t_{name}", "componentDeny": ["/t_bad"]}, {"plugin": "builtin", "component": "/denied"}],
}
ROUTING = [
    ("/python/double", {}, ("remote", "/double")),
    ("/python/pkg/tool", {}, ("remote", "/pkg/tool")),
    ("/builtin/eval", {}, ("builtin", "/eval")),
    ("/eval", {}, ("builtin", "/eval")),
    ("/ai/chat", {"model": "gpt-4"}, ("remote", "/gpt4")),
    ("/ai/chat", {"model": "other"}, ("builtin", "/fallback")),
    ("/tools/good", {}, ("remote", "/t_good")),
    ("/tools/bad", {}, ("builtin", "/denied")),
]


@pytest.mark.parametrize(("component", "step_input", "expected"), ROUTING)
def test_routing_by_specificity_rules_and_templates(component: str, step_input: Any, expected: tuple[str, str]) -> None:
    route = Router(DEMO_ROUTES, {"remote", "builtin"}).route(component, step_input)
    assert (route.plugin, route.component) == expected


@pytest.mark.parametrize(
    ("component", "step_input", "message"),
    [
        ("eval", {}, "no route matches component 'eval' (routes tried: "),
        ("/", {}, "no route matches component '/'"),
        ("/ai/chat", {}, "route condition path $.model is missing"),
    ],
)
def test_routing_errors_name_the_path_and_routes(component: str, step_input: Any, message: str) -> None:
    with pytest.raises(RoutingError) as caught:
        Router(DEMO_ROUTES, {"remote", "builtin"}).route(component, step_input)
    assert message in str(caught.value)
    if "routes tried" in message:
        assert "/python/{*component}" in str(caught.value)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"/a/{x}": [{"plugin": "p"}], "/a/{y}": [{"plugin": "p"}]}, "conflict"),
        ({"/a": [{"plugin": "ghost"}]}, "not configured"),
        ({"/{*c}/x": [{"plugin": "p"}]}, "must be the last segment"),
        ({"a": [{"plugin": "p"}]}, "must start with '/'"),
    ],
)
def test_bad_route_config_is_refused(routes: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteConfigError, match=message):
        Router(routes, {"p"})
