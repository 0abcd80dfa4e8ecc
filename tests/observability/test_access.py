"""The runtime API behind a bearer token: every route but health answers 401 with a JSON
error without it, and the CLI passes it from --token or STEPFLOW_API_TOKEN."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local_fleet.__main__ import print_access
from local_fleet.demo import WORKFLOWS
from tests.observability.conftest import ObservedFleet
from tests.support.processes import REPO_ROOT
from tests.support.runtime import start_runtime

ADDRESS = "127.0.0.170"
TOKEN = "obs-8-token"
OPEN_PATHS = {"/api/v1/health"}
ECHO_FLOW = {"name": "echo", "steps": [], "output": {"$input": "value"}}


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base = start_runtime(None, ADDRESS, tmp_path_factory.mktemp("access"), port=8080, env={"STEPFLOW_API_TOKEN": TOKEN})
    yield base
    process.stop()


def routes(base: str) -> list[tuple[str, str]]:
    """(method, path) of every route in the OpenAPI document, path parameters filled in."""
    document = httpx.get(f"{base}/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    found = [(method.upper(), re.sub(r"\{[^}]+\}", "x", path)) for path, operations in document["paths"].items() for method in operations]
    return [*found, ("GET", "/api/v1/openapi.json")]


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 401 and "bearer token" in body["message"], body


def test_every_route_but_health_answers_401_with_a_json_error(api_base: str) -> None:
    origin = api_base.removesuffix("/api/v1")
    listed = routes(api_base)
    assert len(listed) >= 14, listed
    for method, path in listed:
        if path in OPEN_PATHS:
            assert httpx.request(method, f"{origin}{path}").status_code == 200
            continue
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}, {"authorization": f"Basic {TOKEN}"}):
            assert_unauthorized(httpx.request(method, f"{origin}{path}", headers=headers))
        answered = httpx.request(method, f"{origin}{path}", headers={"authorization": f"Bearer {TOKEN}"})
        assert answered.status_code != 401, (method, path)


def test_the_token_opens_the_api(api_base: str) -> None:
    with httpx.Client(base_url=api_base, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        run = client.post("/runs", json={"flow": ECHO_FLOW, "input": [{"value": 5}]}).json()
        assert run["status"] == "completed" and run["result"] == {"outcome": "success", "result": 5}
        assert client.get(f"/runs/{run['runId']}").json()["runId"] == run["runId"]


def cli(base: str, flow: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "runtime_server", "submit", "--url", base, "--flow", str(flow), "--input-json", '{"value": 7}', *args]
    environment = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, env=environment)


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo.json"
    path.write_text(json.dumps(ECHO_FLOW))
    return path


def test_the_cli_passes_the_token_from_the_flag(api_base: str, flow_file: Path) -> None:
    done = cli(api_base, flow_file, "--token", TOKEN)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "success", "result": 7}


def test_the_cli_passes_the_token_from_the_environment(api_base: str, flow_file: Path) -> None:
    done = cli(api_base, flow_file, env={"STEPFLOW_API_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "success", "result": 7}


def test_the_cli_without_the_token_says_401(api_base: str, flow_file: Path) -> None:
    done = cli(api_base, flow_file)
    assert done.returncode == 2
    assert "HTTP 401" in done.stderr and "bearer token" in done.stderr, done.stderr
    wrong = cli(api_base, flow_file, "--token", "wrong", env={"STEPFLOW_API_TOKEN": TOKEN})
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr, "the flag wins over the environment"


def test_the_local_fleet_prints_a_token_the_cli_can_use(observed: ObservedFleet, capsys: pytest.CaptureFixture[str]) -> None:
    """``up`` mode prints the fleet's token and a command line: that command line works."""
    print_access(observed.fleet)
    printed = capsys.readouterr().out
    command = re.search(r"STEPFLOW_API_TOKEN=(\S+) python -m runtime_server submit --url (\S+) ", printed)
    assert command, printed
    token, url = command.groups()
    done = cli(url, WORKFLOWS / "simple-test-workflow.yaml", env={"STEPFLOW_API_TOKEN": token})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "success", "result": {"original": 7, "doubled": 14.0, "squared": 196.0, "sum": 203.0}}
    assert cli(url, WORKFLOWS / "simple-test-workflow.yaml").returncode == 2, "the fleet's runtime refuses a CLI without the token"
