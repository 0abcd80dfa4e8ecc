"""Property-based fuzzing of the runtime's REST API from its own OpenAPI document.

schemathesis reads /api/v1/openapi.json from the running server (builtins only, on
127.0.0.145) and hypothesis sends generated requests, valid and invalid, to every
operation: a bounded, derandomized number of examples per operation, so the run is
repeatable and short. No answer may be a 5xx; statuses, content types and JSON bodies
must be the ones the document declares. (schemathesis' own pytest plugin does not run
under pytest 9, so each operation is one plain parametrized test driving hypothesis.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

from runtime_server.api import openapi
from runtime_server.api.app import ROUTES
from tests.support.runtime import start_runtime

ADDRESS = "127.0.0.145"
PORT = 8080
EXAMPLES_PER_OPERATION = 150
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [(method, f"/api/v1{path}") for method, path, _, _ in ROUTES]
CONSTRAINED = {(method, f"/api/v1{path}") for (method, path), details in openapi.OPERATIONS.items() if "body" in details or "parameters" in details}
"""Operations with a body or query parameters: the only ones a request can break the document's rules for."""
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS if (method, path) in CONSTRAINED
]


@pytest.fixture(scope="module")
def runtime_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, _ = start_runtime(None, ADDRESS, tmp_path_factory.mktemp("openapi-fuzz"), port=PORT)
    try:
        yield f"http://{ADDRESS}:{PORT}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def api_schema(runtime_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{runtime_url}/api/v1/openapi.json")


def test_the_document_covers_every_route(api_schema: Any) -> None:
    for method, path in OPERATIONS:
        assert api_schema[path][method].responses, f"{method} {path} declares no responses"


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{method} {path} {mode.value}" for method, path, mode in CASES])
def test_no_server_errors_and_answers_match_the_document(api_schema: Any, runtime_url: str, method: str, path: str, mode: GenerationMode) -> None:
    """``positive``: requests the document allows; ``negative``: requests it forbids (they must be 4xx, never 5xx)."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_conform(case: Any) -> None:
        case.call_and_validate(base_url=runtime_url, checks=CHECKS, timeout=10)

    answers_conform()
