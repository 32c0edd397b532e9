"""Property-based run of schemathesis over the served OpenAPI document, against a real server
and gateway: no operation answers 5xx, and every answer (status, content type, headers, body)
is one the document describes. Positive and negative (malformed) inputs, a bounded number each."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from tests.e2e.support import ServerFactory
from tests.http.support import documented_operations, gateway

EXAMPLES_PER_MODE = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# An endless event stream has no response to validate; the watch tests cover it.
SKIPPED = {("GET", "/v1/resources:watch")}


def _bounded(case: Any) -> Any:
    """A generated lock acquisition may not queue for longer than a test can wait."""
    if isinstance(case.body, dict) and isinstance(case.body.get("wait_timeout_seconds"), int | float):
        case.body["wait_timeout_seconds"] = min(case.body["wait_timeout_seconds"], 0.05)
    return case


def _run(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode).map(_bounded))
    @settings(
        max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    run()


@pytest.mark.backend_specific(
    "sqlite",
    reason="the adapter never sees storage (it is a gRPC client), and this run costs seconds per backend; "
    "every other HTTP end-to-end test runs on each backend",
)
def test_no_operation_answers_5xx_or_off_the_document(server_factory: ServerFactory, tmp_path: Path) -> None:
    # A server of its own: generated keys are not under this test's prefix.
    server = server_factory(name="schemathesis").start()
    with gateway(server, tmp_path) as process:
        schema = schemathesis.openapi.from_url(f"{process.base_url}/v1/openapi.json")
        results = list(schema.get_all_operations())
        assert all(isinstance(result, Ok) for result in results)
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        tested = [op for op in operations if (op.method.upper(), op.path) not in SKIPPED]
        # Every documented operation but the watch stream and the document itself.
        assert {(op.method.upper(), op.path) for op in tested} == documented_operations() - SKIPPED - {
            ("GET", "/v1/openapi.json")
        }
        for operation in tested:
            _run(operation, GenerationMode.POSITIVE, process.base_url)
            # Unsatisfiable: nothing about this operation's input can be malformed (no body, free strings).
            with contextlib.suppress(Unsatisfiable):
                _run(operation, GenerationMode.NEGATIVE, process.base_url)
