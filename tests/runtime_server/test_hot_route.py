"""``POST /api/v1/runs`` answers the same whichever path inside the app takes it.

Without an ``Origin`` header the request skips Starlette's layers (api/hot_routes.py);
with one it goes through CORS. A client must not be able to tell, except by the CORS
header it asked for: same status, same JSON, ``Vary: Origin`` on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runtime_server.runtime_process import start_runtime

ADDRESS = "127.0.0.187"
FLOW = {"name": "hot", "steps": [{"id": "m", "component": "/create_messages", "input": {"user_prompt": {"$input": "text"}}}], "output": {"$step": "m"}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    process, base = start_runtime(None, ADDRESS, tmp_path_factory.mktemp("hot-route"), port=7873)
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client
    process.stop()


def _without_run_ids(answer: httpx.Response) -> Any:
    body = answer.json()
    if isinstance(body, dict):
        body.pop("runId", None)
    return body


@pytest.mark.parametrize(
    "request_kwargs, status",
    [
        ({"json": {"input": [{"text": "hi"}]}}, 200),
        ({"json": {"input": [{"text": "hi"}], "wait": False}}, 202),
        ({"json": {}}, 422),
        ({"json": {"flowId": "0" * 64, "input": [1]}}, 404),
        ({"json": {"input": [1], "bogus": True}}, 422),
        ({"content": b"{bad", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
    ],
)
def test_same_answer_with_and_without_origin(api: httpx.Client, request_kwargs: dict[str, Any], status: int) -> None:
    flow_id = api.post("/flows", json={"flow": FLOW}).json()["flowId"]
    if "json" in request_kwargs and request_kwargs["json"] and "flowId" not in request_kwargs["json"]:
        request_kwargs = {**request_kwargs, "json": {"flowId": flow_id, **request_kwargs["json"]}}
    plain = api.post("/runs", **request_kwargs)
    cross = api.post("/runs", **{**request_kwargs, "headers": {**request_kwargs.get("headers", {}), "origin": "http://ui.example"}})
    assert plain.status_code == cross.status_code == status
    assert _without_run_ids(plain) == _without_run_ids(cross)
    assert plain.headers["content-type"] == cross.headers["content-type"] == "application/json"
    assert plain.headers["vary"] == cross.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in plain.headers
    assert cross.headers["access-control-allow-origin"] == "*"
