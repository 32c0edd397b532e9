"""Schemathesis, every check, over the served OpenAPI document, against a real server (each
backend) and gateway: no operation answers 5xx, every answer (status, content type, headers,
body) is one the document describes, every schema-valid request is accepted (no 400) and every
schema-invalid one refused. Positive and negative inputs, a bounded number each.

What JSON Schema cannot say is kept out of positive inputs here (and stated in the document's
descriptions): a request id is used for one request only, a page token is only valid as the
server issued it, a transaction names each key once, the two fence headers come together, a PUT
that may create (If-None-Match) takes no fence, an Idempotency-Key comes only beside a condition
the service compares itself.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from starlette.datastructures import Headers

from lockservice.core.limits import Limits
from lockservice.http.failures import RequestRejected
from lockservice.http.preconditions import ReadFirst, write_condition
from tests.e2e.support import ServerFactory
from tests.fuzz.support import fuzz_settings
from tests.http.support import documented_operations, gateway

EXAMPLES_PER_MODE = 12
checks.load_all_checks()
ALL_CHECKS = list(checks.CHECKS.get_all())
# An endless event stream has no response to validate; the watch tests cover it.
SKIPPED = {("GET", "/v1/resources:watch")}
_LOCK_WAIT = 0.05
_MAX_WAIT = Limits().max_lock_wait_seconds


def _steer(case: Any) -> Any:
    body = case.body if isinstance(case.body, dict) else None
    if body is not None:
        # A lock acquisition may not queue longer than a test can wait (a wait past the
        # maximum stays as it is: refused).
        wait = body.get("wait_timeout_seconds")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= _MAX_WAIT:
            body["wait_timeout_seconds"] = min(wait, _LOCK_WAIT)
    headers = case.headers or {}
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _only_what_the_schema_cannot_say(case, body, headers)
    return case


def _only_what_the_schema_cannot_say(case: Any, body: dict[str, Any] | None, headers: dict[str, Any]) -> None:
    # A request id names one request: a generated id reused for another is REQUEST_ID_REUSED.
    if body is not None and body.get("request_id"):
        body["request_id"] = uuid.uuid4().hex
    if headers.get("Idempotency-Key"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    if case.query:
        case.query.pop("page_token", None)
    fence_headers = ("Lockservice-Fence-Lock", "Lockservice-Fence-Token")
    if sum(name in headers for name in fence_headers) == 1:
        for name in fence_headers:
            headers.pop(name, None)
    if case.method.upper() == "PUT" and "If-None-Match" in headers:
        for name in fence_headers:
            headers.pop(name, None)
    if case.method.upper() in ("PUT", "DELETE") and _read_first(case.method.upper(), headers):
        headers.pop("Idempotency-Key", None)
    if body is not None and isinstance(body.get("operations"), list):
        seen: set[object] = set()
        kept = []
        for operation in body["operations"]:
            members = [m for m in operation.values() if isinstance(m, dict)]
            key = members[0].get("key") if members else None
            if key not in seen:
                seen.add(key)
                kept.append(operation)
        body["operations"] = kept


def _read_first(method: str, headers: dict[str, Any]) -> bool:
    """Whether the adapter evaluates these conditions on a read (no Idempotency-Key then)."""
    try:
        condition = write_condition(Headers({k: str(v) for k, v in headers.items()}), method, required=False)
    except RequestRejected:
        return False
    return isinstance(condition, ReadFirst)


def _run(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode).map(_steer))
    @fuzz_settings(EXAMPLES_PER_MODE)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=ALL_CHECKS, timeout=10)

    run()


def test_every_operation_meets_the_document_under_every_check(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
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
        failures = []
        for operation in tested:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _run(operation, mode, process.base_url)
                except Unsatisfiable:
                    pass  # nothing about this operation's input can be malformed
                except Exception as error:  # every operation's failures in one report
                    failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {error}")
        assert not failures, "\n\n".join(failures)
