"""THE error translator: a gRPC failure -> HTTP status, headers and an RFC 9457 problem+json body.

One table maps every gRPC code to an HTTP status (the grpc-gateway table DESIGN adopts: 409 for
ABORTED and ALREADY_EXISTS); a second gives the statuses HTTP has and gRPC has not (405, 413, 415,
428) to the reasons only the adapter gives. Two options change the answer to a precondition:

- strict RFC 9110 mode: a conflict caused by a failed `If-Match` / `If-Unmodified-Since` /
  `If-None-Match` is 412 Precondition Failed instead of 409 (the Kubernetes-style default);
- require-preconditions mode (`HttpOptions.require_preconditions`) refuses unconditional writes
  with PRECONDITION_REQUIRED, which this table answers with 428.

The body has `type` (one URI per reason), `title`, `status`, `detail`, `instance`, plus `code`
(the gRPC code name), `reason`, `metadata` (ErrorInfo) and `conflict` (the current version, etag,
holder, token and expiry). A conflict that names the current etag sets `ETag`, so a client can
retry with `If-Match` at once. Messages not from lockservice (transport errors) are replaced with
a generic detail: they may name internal addresses. Never a traceback.

`rpc_error_handler()` is the same translation as a Starlette / FastAPI exception handler:
`app.add_exception_handler(grpc.RpcError, rpc_error_handler())`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType

import grpc
from lockservice_client import LockserviceError as ClientError
from starlette.requests import Request
from starlette.responses import Response

from lockservice.http import failures
from lockservice.http.failures import (
    Failure,
    RequestRejected,
    failure_from_client_error,
    failure_from_rpc_error,
)
from lockservice.json_views import JsonObject, conflict_json

__all__ = [
    "DEFAULT_TYPE_BASE_URI",
    "HTTP_STATUS_BY_ADAPTER_REASON",
    "HTTP_STATUS_BY_CODE",
    "PROBLEM_JSON",
    "TITLE_BY_REASON",
    "Problem",
    "ProblemOptions",
    "problem_for",
    "problem_response",
    "problem_type",
    "rpc_error_handler",
]

PROBLEM_JSON = "application/problem+json"
DEFAULT_TYPE_BASE_URI = "https://lockservice.dev/problems/"

HTTP_STATUS_BY_CODE: Mapping[grpc.StatusCode, int] = MappingProxyType(
    {
        grpc.StatusCode.OK: 200,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DATA_LOSS: 500,
    }
)

HTTP_STATUS_BY_ADAPTER_REASON: Mapping[str, int] = MappingProxyType(
    {
        failures.PRECONDITION_REQUIRED: 428,
        failures.BODY_TOO_LARGE: 413,
        failures.UNSUPPORTED_MEDIA_TYPE: 415,
        failures.METHOD_NOT_ALLOWED: 405,
        failures.ROUTE_NOT_FOUND: 404,
    }
)

TITLE_BY_REASON: Mapping[str, str] = MappingProxyType(
    {
        "RESOURCE_EXISTS": "Resource already exists",
        "VERSION_MISMATCH": "Version mismatch",
        "VALUE_MISMATCH": "Value mismatch",
        "TRANSACTION_CONFLICT": "Transaction compare failed",
        "LOCK_HELD": "Lock held by another holder",
        "LOCK_NOT_HELD": "Lock not held with this token",
        "STALE_FENCE": "Stale fencing token",
        "RESOURCE_NOT_FOUND": "Resource not found",
        "VERSION_NOT_FOUND": "Version not found",
        "LEASE_NOT_FOUND": "Lease not found",
        "LOCK_NOT_FOUND": "Lock not found",
        "INVALID_KEY": "Invalid key",
        "VALUE_TOO_LARGE": "Value too large",
        "INVALID_TTL": "Invalid TTL or timeout",
        "REQUEST_ID_REUSED": "Request id reused for a different request",
        "INVALID_REQUEST_ID": "Invalid request id",
        "INVALID_PAGE_TOKEN": "Invalid page token",
        "INVALID_ARGUMENT": "Invalid argument",
        "REVISION_COMPACTED": "Revision compacted",
        "UNAUTHENTICATED": "Unauthenticated",
        "PERMISSION_DENIED": "Permission denied",
        "LIMIT_EXCEEDED": "Limit exceeded",
        "STORE_UNAVAILABLE": "Store unavailable",
        "SHUTTING_DOWN": "Shutting down",
        "NOT_IMPLEMENTED": "Not implemented",
        "INTERNAL_ERROR": "Internal error",
        failures.PRECONDITION_REQUIRED: "Precondition required",
        failures.BODY_TOO_LARGE: "Request body too large",
        failures.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
        failures.METHOD_NOT_ALLOWED: "Method not allowed",
        failures.ROUTE_NOT_FOUND: "No such route",
    }
)

# Strict mode: which reasons mean "the precondition in this header evaluated false" (RFC 9110
# section 13.1: If-Match fails on another etag or on no current representation; If-None-Match
# fails on a current representation it names; If-Unmodified-Since on a later one). A write the
# adapter pinned to the state it read (`preconditions.ReadFirst`) fails VERSION_MISMATCH or
# RESOURCE_EXISTS when that state changed before the write: its condition no longer holds.
# A missing key is a 404 for If-Unmodified-Since and If-None-Match (section 13.2.1).
_PRECONDITION_FAILURES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "if-match": frozenset({"VERSION_MISMATCH", "RESOURCE_NOT_FOUND"}),
        "if-unmodified-since": frozenset({"VERSION_MISMATCH", "RESOURCE_EXISTS"}),
        "if-none-match": frozenset({"VERSION_MISMATCH", "RESOURCE_EXISTS"}),
    }
)

# Generic details for failures without our ErrorInfo: their own text is not shown.
_GENERIC_DETAIL: Mapping[grpc.StatusCode, str] = MappingProxyType(
    {
        grpc.StatusCode.UNAVAILABLE: "the lockservice backend is unavailable; retry later",
        grpc.StatusCode.DEADLINE_EXCEEDED: "the lockservice backend did not answer in time",
        grpc.StatusCode.CANCELLED: "the call was cancelled before it finished",
    }
)
_STATUS_PHRASE_499 = "Client Closed Request"
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class ProblemOptions:
    """`strict_preconditions`: 412 instead of 409 for a failed If-Match / If-Unmodified-Since /
    If-None-Match.
    `type_base_uri`: prefix of each problem `type` (one URI per reason)."""

    strict_preconditions: bool = False
    type_base_uri: str = DEFAULT_TYPE_BASE_URI


@dataclass(frozen=True)
class Problem:
    """An HTTP error answer: status, extra headers (ETag, Allow, Retry-After, ...) and the body;
    `response()` adds `Content-Type: application/problem+json`."""

    status: int
    body: JsonObject
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        content = json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(content, status_code=self.status, headers=dict(self.headers), media_type=PROBLEM_JSON)


def problem_type(reason: str, options: ProblemOptions = ProblemOptions()) -> str:
    """The `type` URI of `reason`, e.g. `https://lockservice.dev/problems/version-mismatch`."""
    if not reason:
        return "about:blank"
    return options.type_base_uri + reason.lower().replace("_", "-")


def _phrase(status: int) -> str:
    return _STATUS_PHRASE_499 if status == 499 else HTTPStatus(status).phrase


def _http_status(failure: Failure, preconditions: Collection[str], options: ProblemOptions) -> int:
    if failure.reason in HTTP_STATUS_BY_ADAPTER_REASON:
        return HTTP_STATUS_BY_ADAPTER_REASON[failure.reason]
    if options.strict_preconditions and any(
        failure.reason in _PRECONDITION_FAILURES.get(header.lower(), ()) for header in preconditions
    ):
        return 412
    return HTTP_STATUS_BY_CODE.get(failure.code, 500)


def _headers(failure: Failure, status: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    if status in (409, 412) and failure.conflict is not None and failure.conflict.current_etag:
        headers["ETag"] = failure.conflict.current_etag
    if status == 405 and "allow" in failure.metadata:
        headers["Allow"] = failure.metadata["allow"]
    if status in _RETRY_AFTER_STATUSES:
        headers["Retry-After"] = "1"
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="lockservice"'  # RFC 9110: a 401 names its scheme
    return headers


def _detail(failure: Failure) -> str:
    if failure.trusted and failure.message:
        return failure.message
    return _GENERIC_DETAIL.get(
        failure.code, f"the call to the lockservice backend failed with {failure.code.name}"
    )


def problem_for(
    error: grpc.RpcError | ClientError | Failure,
    *,
    instance: str = "",
    preconditions: Collection[str] = (),
    options: ProblemOptions = ProblemOptions(),
) -> Problem:
    """The HTTP answer to `error`.

    `instance` is the request path; `preconditions` names the conditional headers the request
    carried (`If-Match`, `If-Unmodified-Since`, `If-None-Match`), which strict mode needs to
    answer 412.
    """
    if isinstance(error, Failure):
        failure = error
    elif isinstance(error, ClientError):
        failure = failure_from_client_error(error)
    else:
        failure = failure_from_rpc_error(error)
    status = _http_status(failure, preconditions, options)
    body: JsonObject = {
        "type": problem_type(failure.reason, options),
        "title": TITLE_BY_REASON.get(failure.reason, _phrase(status)),
        "status": status,
        "detail": _detail(failure),
        "instance": instance,
        "code": failure.code.name,
    }
    if failure.reason:
        body["reason"] = failure.reason
    if failure.metadata:
        body["metadata"] = dict(failure.metadata)
    if failure.conflict is not None:
        body["conflict"] = conflict_json(failure.conflict)
    return Problem(status=status, body=body, headers=_headers(failure, status))


def _preconditions(request: Request) -> tuple[str, ...]:
    return tuple(name for name in _PRECONDITION_FAILURES if name in request.headers)


def problem_response(
    request: Request, error: grpc.RpcError | ClientError | Failure, options: ProblemOptions = ProblemOptions()
) -> Response:
    """`problem_for` with the instance and preconditions taken from `request`."""
    # Starlette keeps the full path in the scope, mount prefix included: the instance a client sent.
    problem = problem_for(
        error, instance=request.url.path, preconditions=_preconditions(request), options=options
    )
    return problem.response()


def rpc_error_handler(
    options: ProblemOptions = ProblemOptions(),
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A Starlette / FastAPI exception handler for `grpc.RpcError` (sync or grpc.aio), for the
    Python client's `lockservice_client.LockserviceError` and for the adapter's own
    `RequestRejected`: the same problem+json any lockservice route answers."""

    async def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestRejected):
            return problem_response(request, exc.failure, options)
        if isinstance(exc, grpc.RpcError | ClientError):
            return problem_response(request, exc, options)
        raise exc

    return handle
