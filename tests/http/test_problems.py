"""THE translator: every gRPC code has an HTTP status, every reason a problem type, and each
DESIGN row becomes the exact problem+json answer."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from lockservice_client import errors as client_errors
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice import errors
from lockservice.http.failures import (
    ADAPTER_DOMAIN_REASONS,
    Failure,
    failure_from_rpc_error,
    method_not_allowed,
)
from lockservice.http.problems import (
    HTTP_STATUS_BY_ADAPTER_REASON,
    HTTP_STATUS_BY_CODE,
    TITLE_BY_REASON,
    ProblemOptions,
    problem_for,
    problem_type,
    rpc_error_handler,
)
from lockservice.model import ConflictState, Resource
from lockservice.rpc.status import to_grpc_status
from lockservice.v1 import errors_pb2

STRICT = ProblemOptions(strict_preconditions=True)
UPDATED_US = 1_700_000_000_123_456
CURRENT = Resource(
    key="orders/42",
    value=b"{}",
    content_type="application/json",
    version=7,
    create_revision=12,
    mod_revision=40,
    create_time_us=UPDATED_US - 1000,
    update_time_us=UPDATED_US,
)

# DESIGN section 3: reason -> HTTP status.
DESIGN_STATUS = {
    "RESOURCE_EXISTS": 409,
    "VERSION_MISMATCH": 409,
    "VALUE_MISMATCH": 409,
    "TRANSACTION_CONFLICT": 409,
    "LOCK_HELD": 409,
    "LOCK_NOT_HELD": 409,
    "STALE_FENCE": 409,
    "RESOURCE_NOT_FOUND": 404,
    "VERSION_NOT_FOUND": 404,
    "LEASE_NOT_FOUND": 404,
    "LOCK_NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "INVALID_KEY": 400,
    "VALUE_TOO_LARGE": 400,
    "INVALID_TTL": 400,
    "REQUEST_ID_REUSED": 400,
    "INVALID_REQUEST_ID": 400,
    "INVALID_PAGE_TOKEN": 400,
    "REVISION_COMPACTED": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "LIMIT_EXCEEDED": 429,
    "STORE_UNAVAILABLE": 503,
    "SHUTTING_DOWN": 503,
    "NOT_IMPLEMENTED": 501,
}


def rpc_error(error: errors.LockserviceError) -> grpc.aio.AioRpcError:
    """What a grpc.aio stub raises when lockservice answers `error`."""
    status = to_grpc_status(error)
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
    )


def test_every_grpc_code_has_the_grpc_gateway_status() -> None:
    assert {code.name: status for code, status in HTTP_STATUS_BY_CODE.items()} == {
        "OK": 200,
        "CANCELLED": 499,
        "UNKNOWN": 500,
        "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404,
        "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403,
        "UNAUTHENTICATED": 401,
        "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400,
        "ABORTED": 409,
        "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
        "UNAVAILABLE": 503,
        "DATA_LOSS": 500,
    }
    assert set(HTTP_STATUS_BY_CODE) == set(grpc.StatusCode)


def test_every_reason_has_a_title_and_its_own_type_uri() -> None:
    reasons = [
        name
        for name in errors_pb2.ErrorReason.DESCRIPTOR.values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    ]
    assert set(TITLE_BY_REASON) == set(reasons) | set(ADAPTER_DOMAIN_REASONS)
    assert problem_type("VERSION_MISMATCH") == "https://lockservice.dev/problems/version-mismatch"
    assert problem_type("") == "about:blank"
    types = [problem_type(reason) for reason in TITLE_BY_REASON]
    assert len(set(types)) == len(types)
    assert set(HTTP_STATUS_BY_ADAPTER_REASON) == set(ADAPTER_DOMAIN_REASONS)


@pytest.mark.parametrize("error_class", errors.all_error_classes(), ids=lambda c: c.__name__)
def test_every_domain_error_has_its_design_status(error_class: type[errors.LockserviceError]) -> None:
    problem = problem_for(rpc_error(error_class("message for the client")), instance="/v1/x")
    assert problem.status == DESIGN_STATUS[error_class.reason]
    assert problem.body["reason"] == error_class.reason
    assert problem.body["detail"] == "message for the client"
    assert problem.body["type"] == problem_type(error_class.reason)
    assert problem.body["title"] == TITLE_BY_REASON[error_class.reason]


def test_a_version_mismatch_is_the_exact_problem_with_the_current_etag() -> None:
    error = errors.VersionMismatch(
        "orders/42 is at version 7, not at the expected version 6",
        metadata={"key": "orders/42", "current_version": "7"},
        conflict=ConflictState(key="orders/42", current=CURRENT, expected="version 6", revision=41),
    )
    problem = problem_for(rpc_error(error), instance="/v1/resources/orders/42")
    assert problem.status == 409
    assert problem.headers == {"ETag": '"12.7"'}
    assert problem.body == {
        "type": "https://lockservice.dev/problems/version-mismatch",
        "title": "Version mismatch",
        "status": 409,
        "detail": "orders/42 is at version 7, not at the expected version 6",
        "instance": "/v1/resources/orders/42",
        "code": "ABORTED",
        "reason": "VERSION_MISMATCH",
        "metadata": {"key": "orders/42", "current_version": "7"},
        "conflict": {
            "key": "orders/42",
            "exists": True,
            "current_version": 7,
            "current_etag": '"12.7"',
            "current_update_time": "2023-11-14T22:13:20.123456Z",
            "current_mod_revision": 40,
            "expected": "version 6",
            "compare_index": 0,
            "holder": "",
            "current_token": 0,
            "expire_time": None,
            "lease_id": "",
            "revision": 41,
            "current_content_type": "application/json",
            "current_value_base64": "e30=",
        },
    }
    response = problem.response()
    assert response.media_type == "application/problem+json"
    assert response.headers["etag"] == '"12.7"'


def test_a_lock_conflict_carries_holder_token_and_expiry_and_no_etag() -> None:
    error = errors.LockHeld(
        "lock jobs/nightly is held by worker-a (token 9)",
        conflict=ConflictState(
            key="jobs/nightly",
            current=None,
            expected="free",
            revision=50,
            holder="worker-a",
            token=9,
            expire_time_us=UPDATED_US,
            lease_id="abc",
        ),
    )
    problem = problem_for(rpc_error(error))
    assert problem.status == 409
    assert problem.headers == {}
    conflict = problem.body["conflict"]
    assert isinstance(conflict, dict)
    assert (conflict["holder"], conflict["current_token"], conflict["lease_id"]) == ("worker-a", 9, "abc")
    assert conflict["expire_time"] == "2023-11-14T22:13:20.123456Z"
    assert conflict["exists"] is False
    assert conflict["current_update_time"] is None


def test_a_withheld_conflict_is_only_the_echo_of_the_request_with_no_etag() -> None:
    error = errors.VersionMismatch(
        "orders/1 is not at the expected version 6; its current state is withheld",
        metadata={"key": "orders/1"},
        conflict=ConflictState(key="orders/1", current=None, expected="version 6", withheld=True),
    )
    problem = problem_for(rpc_error(error))
    assert problem.status == 409
    assert problem.headers == {}
    assert problem.body["conflict"] == {
        "key": "orders/1",
        "expected": "version 6",
        "compare_index": 0,
        "state_withheld": True,
    }
    assert problem.body["metadata"] == {"key": "orders/1"}
    assert problem.body["detail"] == error.message


@pytest.mark.parametrize(
    ("error", "preconditions", "strict_status"),
    [
        (errors.VersionMismatch("stale"), ("if-match",), 412),
        (errors.ResourceNotFound("missing"), ("if-match",), 412),
        (errors.ResourceExists("exists"), ("if-none-match",), 412),
        (errors.ResourceExists("exists"), ("if-match",), 409),
        (errors.VersionMismatch("modified since"), ("if-unmodified-since",), 412),
        (errors.ResourceExists("created since"), ("if-unmodified-since",), 412),
        (errors.ResourceNotFound("missing"), ("if-unmodified-since",), 404),
        (errors.VersionMismatch("changed since read"), ("if-none-match",), 412),
        (errors.ResourceNotFound("missing"), ("if-none-match",), 404),
        (errors.VersionMismatch("stale"), ("if-modified-since",), 409),
        (errors.VersionMismatch("stale"), (), 409),
        (errors.LockHeld("held"), ("if-match",), 409),
        (errors.StaleFence("stale fence"), ("if-match",), 409),
    ],
)
def test_strict_mode_answers_412_only_to_a_failed_precondition_header(
    error: errors.LockserviceError, preconditions: tuple[str, ...], strict_status: int
) -> None:
    failure = rpc_error(error)
    assert problem_for(failure, preconditions=preconditions, options=STRICT).status == strict_status
    default = problem_for(failure, preconditions=preconditions).status
    assert default == DESIGN_STATUS[error.reason]


def test_a_transport_failure_gets_a_generic_detail_and_retry_after() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        "failed to connect to all addresses; last error: ipv4:10.1.2.3:50051: Connection refused",
    )
    problem = problem_for(error, instance="/v1/resources/a")
    assert problem.status == 503
    assert problem.headers == {"Retry-After": "1"}
    assert problem.body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the lockservice backend is unavailable; retry later",
        "instance": "/v1/resources/a",
        "code": "UNAVAILABLE",
    }


def test_details_from_another_domain_or_malformed_are_not_trusted() -> None:
    info = error_details_pb2.ErrorInfo(reason="SECRET", domain="elsewhere")
    packed = status_pb2.Status(
        code=grpc.StatusCode.INTERNAL.value[0], message="db password wrong at 10.0.0.9"
    )
    packed.details.add().Pack(info)
    status = rpc_status.to_status(packed)
    foreign = grpc.aio.AioRpcError(
        status.code, None, grpc.aio.Metadata(*status.trailing_metadata), status.details
    )
    assert failure_from_rpc_error(foreign) == Failure(
        grpc.StatusCode.INTERNAL, "", "", {}, None, trusted=False
    )
    problem = problem_for(foreign)
    assert problem.status == 500
    assert "10.0.0.9" not in str(problem.body)
    assert problem.body["detail"] == "the call to the lockservice backend failed with INTERNAL"

    garbage = grpc.aio.AioRpcError(
        grpc.StatusCode.ABORTED, None, grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\x00")), "x"
    )
    assert failure_from_rpc_error(garbage).trusted is False


def test_a_401_names_its_scheme_and_a_429_says_when_to_retry() -> None:
    assert problem_for(rpc_error(errors.Unauthenticated("no token"))).headers == {
        "WWW-Authenticate": 'Bearer realm="lockservice"'
    }
    assert problem_for(rpc_error(errors.LimitExceeded("too many waiters"))).headers == {"Retry-After": "1"}


def test_cancelled_is_499_and_method_not_allowed_names_the_allowed_methods() -> None:
    cancelled = problem_for(Failure(grpc.StatusCode.CANCELLED, "", "gone"))
    assert (cancelled.status, cancelled.body["title"]) == (499, "Client Closed Request")
    wrong = problem_for(method_not_allowed("PATCH", "GET, PUT").failure)
    assert wrong.status == 405
    assert wrong.headers == {"Allow": "GET, PUT"}
    assert wrong.body["type"] == "https://lockservice.dev/problems/method-not-allowed"


def test_the_exception_handler_in_a_users_starlette_app() -> None:
    error = rpc_error(errors.ResourceExists("orders/1 already exists at version 1"))

    async def create(request: Request) -> Response:
        raise error

    async def crash(request: Request) -> Response:
        raise KeyError("not a gRPC error")

    options = ProblemOptions(type_base_uri="https://example.com/errors/")
    app = Starlette(routes=[Route("/orders", create, methods=["POST"]), Route("/crash", crash)])
    app.add_exception_handler(grpc.RpcError, rpc_error_handler(options))

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://user.app") as client:
            return await client.post("/orders"), await client.get("/crash")

    response, crashed = asyncio.run(call())
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "https://example.com/errors/resource-exists"
    assert body["instance"] == "/orders"
    assert body["code"] == "ALREADY_EXISTS"
    assert crashed.status_code == 500


def test_the_exception_handler_translates_the_python_clients_errors() -> None:
    """`lockservice_client` raises its own typed errors (not `grpc.RpcError`); registered for
    them as the README says, the handler answers the same 409 with the current state."""
    conflict = errors.VersionMismatch(
        "orders/42 is at version 7, not at the expected version 6",
        metadata={"key": "orders/42", "current_version": "7"},
        conflict=ConflictState(key="orders/42", current=CURRENT, expected="version 6", revision=41),
    )

    async def update(request: Request) -> Response:
        try:
            raise rpc_error(conflict)
        except grpc.RpcError as error:  # what each call of the client does
            raise client_errors.error_from_rpc(error) from error

    app = Starlette(routes=[Route("/orders/42", update, methods=["PUT"])])
    app.add_exception_handler(client_errors.LockserviceError, rpc_error_handler())

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://user.app") as client:
            return await client.put("/orders/42")

    response = asyncio.run(call())
    assert response.status_code == 409
    assert response.headers["etag"] == '"12.7"'
    body: dict[str, Any] = response.json()
    assert (body["code"], body["reason"], body["instance"]) == ("ABORTED", "VERSION_MISMATCH", "/orders/42")
    assert body["detail"] == "orders/42 is at version 7, not at the expected version 6"
    assert body["metadata"] == {"key": "orders/42", "current_version": "7"}
    assert (body["conflict"]["current_version"], body["conflict"]["revision"]) == (7, 41)


def test_a_client_error_without_its_grpc_cause_keeps_code_reason_and_message() -> None:
    error = client_errors.LockHeld(
        "jobs/1 is held by worker-2", code=grpc.StatusCode.ABORTED, reason="LOCK_HELD", metadata={"k": "v"}
    )
    problem = problem_for(error, instance="/jobs/1")
    assert problem.status == 409
    assert (problem.body["reason"], problem.body["detail"], problem.body["metadata"]) == (
        "LOCK_HELD",
        "jobs/1 is held by worker-2",
        {"k": "v"},
    )
