"""Explicit null means absent (issue 14): flows, request bodies, the config. Pure code, table tests.

Required keys given as null are refused naming the key. The normalised form (and so the flow id)
is upstream 0.9.0's: what tests/interop/test_upstream_client.py checks against the real server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from runtime_server.api.flows import StoreFlowRequest
from runtime_server.api.responses import decode_body
from runtime_server.api.runs import CreateRunRequest
from runtime_server.config import ApiLimits, ConfigError, settings_from_data
from runtime_server.flow.model import FlowParseError, parse_flow

STEP = {"id": "a", "component": "/builtin/put_blob", "input": {"data": 1, "blob_type": "data"}}
FLOW = {"name": "n", "description": "d", "steps": [STEP], "output": {"$step": "a"}}


def _flow(**changes: Any) -> dict[str, Any]:
    return {**FLOW, **changes}


def _step(**changes: Any) -> dict[str, Any]:
    return _flow(steps=[{**STEP, **changes}])


NULL_IS_ABSENT = [
    ("flow version", _flow(version=None), FLOW),
    ("flow schemas", _flow(schemas=None), FLOW),
    ("flow test and examples", _flow(test=None, examples=None), FLOW),
    ("flow metadata", _flow(metadata=None), FLOW),
    ("flow description", _flow(description=None), {key: value for key, value in FLOW.items() if key != "description"}),
    ("flow steps", _flow(steps=None, output=1), {"name": "n", "description": "d", "steps": [], "output": 1}),
    ("flow output", _flow(output=None), {key: value for key, value in FLOW.items() if key != "output"}),
    ("step onError", _step(onError=None), FLOW),
    ("step mustExecute", _step(mustExecute=None), FLOW),
    ("step metadata", _step(metadata=None), FLOW),
    ("step input", _step(input=None), _flow(steps=[{"id": "a", "component": "/builtin/put_blob"}])),
    ("FlowBuilder's unset step options", _step(onError=None, mustExecute=None, metadata={}), FLOW),
    ("onError defaultValue", _step(onError={"action": "useDefault", "defaultValue": None}), _step(onError={"action": "useDefault"})),
    ("onError maxAttempts", _step(onError={"action": "retry", "maxAttempts": None}), _step(onError={"action": "retry"})),
    ("a schema given as null", _flow(schemas={"properties": {"input": None, "output": {}}}), _flow(schemas={"properties": {"output": {}}})),
    ("$step path", _flow(output={"$step": "a", "path": None}), FLOW),
]


@pytest.mark.parametrize(("name", "with_nulls", "without"), NULL_IS_ABSENT, ids=[row[0] for row in NULL_IS_ABSENT])
def test_an_optional_key_given_as_null_is_the_key_left_out(name: str, with_nulls: dict[str, Any], without: dict[str, Any]) -> None:
    assert parse_flow(with_nulls).to_json() == parse_flow(without).to_json()


REQUIRED_NULL = [
    ("step id", _step(id=None), "$.steps[0].id", "'id' is required"),
    ("step component", _step(component=None), "$.steps[0].component", "'component' is required"),
    ("onError action", _step(onError={"action": None}), "$.steps[0].onError.action", "onError needs an action"),
    ("onError without action", _step(onError={}), "$.steps[0].onError.action", "onError needs an action"),
    ("$step", _flow(output={"$step": None}), "$.output", "$step must be a step id string"),
    ("mustExecute not a boolean", _step(mustExecute="yes"), "$.steps[0].mustExecute", "mustExecute must be true or false"),
]


@pytest.mark.parametrize(("name", "data", "location", "message"), REQUIRED_NULL, ids=[row[0] for row in REQUIRED_NULL])
def test_a_required_key_given_as_null_is_refused_naming_it(name: str, data: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(FlowParseError) as caught:
        parse_flow(data)
    assert caught.value.location == location and message in caught.value.message


UPSTREAM_FORM = [
    ("a written mustExecute false stays", _step(mustExecute=False), _step(mustExecute=False)),
    ("a written onError fail stays", _step(onError={"action": "fail"}), _step(onError={"action": "fail"})),
    ("FlowBuilder's schemas (the Rust struct's shape) are not read", _flow(schemas={"defs": {}, "input": {"type": "object"}, "steps": {}}), FLOW),
    (
        "schemas keep $defs and properties.{input,output,variables,steps}",
        _flow(
            schemas={
                "title": "t",
                "$defs": {"A": {}},
                "properties": {"extra": {}, "input": {"type": "object"}, "steps": {"type": "object", "properties": {"a": {}}, "required": ["a"]}},
            }
        ),
        _flow(
            schemas={"type": "object", "$defs": {"A": {}}, "properties": {"input": {"type": "object"}, "steps": {"type": "object", "properties": {"a": {}}}}}
        ),
    ),
    ("schemas with nothing upstream reads are none", _flow(schemas={"type": "object", "properties": {}}), FLOW),
    ("empty examples stay", _flow(examples=[]), _flow(examples=[])),
    ("empty test cases go", _flow(test={"cases": []}), _flow(test={})),
    ("null inside an expression is a value: default", _flow(output={"$variable": "x", "default": None}), _flow(output={"$variable": "$.x", "default": None})),
    ("null inside an expression is a value: else", _flow(output={"$if": True, "then": 1, "else": None}), _flow(output={"$if": True, "then": 1, "else": None})),
    ("empty metadata goes", _step(metadata={}), FLOW),
]


@pytest.mark.parametrize(("name", "written", "normalised"), UPSTREAM_FORM, ids=[row[0] for row in UPSTREAM_FORM])
def test_normalised_form_is_upstreams(name: str, written: dict[str, Any], normalised: dict[str, Any]) -> None:
    assert parse_flow(written).to_json() == normalised


def test_a_variable_default_of_null_resolves_to_null() -> None:
    class Scope:
        input: Any = {}  # noqa: RUF012 - one Scope per test, never shared
        outcomes: dict[str, Any] = {}  # noqa: RUF012 - one Scope per test, never shared

        def variable(self, name: str) -> Any:
            from runtime_server.flow.paths import MISSING

            return MISSING

    assert parse_flow(_flow(output={"$variable": "x", "default": None})).output.resolve(Scope()) is None


BODIES = [
    (
        "run: every optional key null",
        CreateRunRequest,
        b'{"flowId": "f", "input": [1], "flow": null, "overrides": null, "variables": null, "maxConcurrency": null, "wait": null}',
        CreateRunRequest(input=[1], flow_id="f"),
    ),
    (
        "run: wait null among set keys",
        CreateRunRequest,
        b'{"flowId": "f", "input": [1], "wait": null, "maxConcurrency": 2}',
        CreateRunRequest(input=[1], flow_id="f", max_concurrency=2),
    ),
    ("store: dryRun null", StoreFlowRequest, b'{"flow": {"steps": []}, "dryRun": null}', StoreFlowRequest(flow={"steps": []})),
    ("no nulls: the one typed decode", StoreFlowRequest, b'{"flow": {}, "dryRun": true}', StoreFlowRequest(flow={}, dry_run=True)),
]


@pytest.mark.parametrize(("name", "body_type", "raw", "expected"), BODIES, ids=[row[0] for row in BODIES])
def test_request_body_nulls_are_absent(name: str, body_type: type[Any], raw: bytes, expected: Any) -> None:
    assert decode_body(raw, body_type) == expected


BAD_BODIES = [
    ("a wrong type still says where", CreateRunRequest, b'{"flowId": "f", "input": [1], "wait": "no", "variables": null}', "$.wait"),
    ("a required key given as null is missing", StoreFlowRequest, b'{"dryRun": null, "flow": null}', "missing required field `flow`"),
    ("unknown keys stay refused", CreateRunRequest, b'{"flowId": "f", "input": [1], "extra": 1, "wait": null}', "unknown field `extra`"),
]


@pytest.mark.parametrize(("name", "body_type", "raw", "message"), BAD_BODIES, ids=[row[0] for row in BAD_BODIES])
def test_bad_request_bodies_are_still_refused(name: str, body_type: type[Any], raw: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message.replace("$", r"\$").replace("`", ".")):
        decode_body(raw, body_type)


BASE_CONFIG = {"plugins": {"builtin": {"type": "builtin"}}, "routes": {"/{*component}": [{"plugin": "builtin"}]}}
CONFIG_NULLS = [
    ("top-level keys", {"stateStore": None, "limits": None, "workingDirectory": None, "stepAttempts": None}),
    ("limits", {"limits": {"maxFlowSteps": None, "maxRequestBytes": 10}}),
    ("store retention", {"stateStore": {"type": "inMemory", "maxRuns": None, "maxAgeSeconds": None}}),
    ("plugin options", {"plugins": {"builtin": {"type": "builtin", "url": None}, "pods": {"type": "stepflow", "url": None, "urls": ["http://a:1"]}}}),
]


@pytest.mark.parametrize(("name", "changes"), CONFIG_NULLS, ids=[row[0] for row in CONFIG_NULLS])
def test_config_nulls_are_absent(name: str, changes: dict[str, Any]) -> None:
    settings = settings_from_data({**BASE_CONFIG, **changes}, Path("/tmp"))
    defaults = settings_from_data(BASE_CONFIG, Path("/tmp"))
    assert (settings.store, settings.step_attempts, settings.limits, settings.working_directory) == (
        defaults.store,
        defaults.step_attempts,
        ApiLimits(max_request_bytes=10) if changes.get("limits") else defaults.limits,
        defaults.working_directory,
    )
    assert all(None not in options.values() for options in settings.plugins.values())


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"routes": None}, "'routes' is required"), ({"plugins": None}, "'plugins' is required"), ({"plugins": {"builtin": {"type": None}}}, "needs a 'type'")],
)
def test_required_config_keys_given_as_null_are_refused_naming_them(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_data({**BASE_CONFIG, **changes}, Path("/tmp"))
