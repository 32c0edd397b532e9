"""Query parameters and request headers, checked and converted; 400 naming the field otherwise.

`Authorization` is passed on, as the `authorization` metadata of the gRPC call, so a server with
authentication sees the HTTP caller's own credentials (the adapter lends none of its own: see
`HttpOptions.require_authorization` and `HttpOptions.client_identity_secret`).

Headers that carry lockservice fields on the raw resource routes:
- `Idempotency-Key`: the `request_id` of a write (AIP-155: a retry returns the first answer);
- `Lockservice-Lease-Id`: attach the written resource to a lease;
- `Lockservice-Fence-Lock` and `Lockservice-Fence-Token` (both or neither): a fenced write.
"""

from __future__ import annotations

from typing import TypedDict

import grpc
from starlette.requests import Request

from lockservice.adapter_metadata import ADAPTER_SECRET_METADATA, CLIENT_IDENTITY_METADATA
from lockservice.http.bodies import JsonFields
from lockservice.http.failures import Failure, RequestRejected, invalid_argument
from lockservice.http.identity import SCOPE_KEY
from lockservice.http.options import HttpOptions
from lockservice.v1 import lock_pb2, resource_pb2

__all__ = [
    "FENCE_FIELDS",
    "PageFields",
    "body_fence",
    "forwarded",
    "header_fence",
    "idempotency_key",
    "lease_header",
    "page_fields",
    "query_bool",
    "query_int",
    "query_with_values",
]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
FENCE_FIELDS = ("lock_name", "token")


def query_int(request: Request, name: str, *, bits: int = 64) -> int | None:
    """The integer query parameter `name`, None when absent (`name=` is not a number: 400)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    low, high = _INT32 if bits == 32 else _INT64
    try:
        value = int(raw, 10)
    except ValueError:
        raise invalid_argument(name, f"query parameter {name} must be an integer") from None
    if not low <= value <= high:
        raise invalid_argument(name, f"query parameter {name} is out of range")
    return value


def query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise invalid_argument(name, f"query parameter {name} must be true or false")


def query_with_values(request: Request) -> bool:
    """`view=basic` (default: metadata only) or `view=full` (values too, base64)."""
    view = request.query_params.get("view", "basic").lower()
    if view not in ("basic", "full"):
        raise invalid_argument("view", "query parameter view must be basic or full")
    return view == "full"


class PageFields(TypedDict):
    """The paging fields shared by ListResources and ListResourceVersions."""

    page_size: int
    page_token: str
    view: resource_pb2.ResourceView.ValueType


def page_fields(request: Request) -> PageFields:
    """`page_size`, `page_token` and `view` of a listing's query."""
    return PageFields(
        page_size=query_int(request, "page_size", bits=32) or 0,
        page_token=request.query_params.get("page_token", ""),
        view=resource_pb2.RESOURCE_VIEW_FULL
        if query_with_values(request)
        else resource_pb2.RESOURCE_VIEW_BASIC,
    )


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value.isprintable() or not value.isascii():
        raise invalid_argument(name, f"{name} must be printable ASCII")
    return value


def _field_header(request: Request, name: str) -> str:
    """A header carrying a lockservice field: "" when absent; a header that is sent blank is a
    400 (it would otherwise silently mean "no key" or "no fence")."""
    value = _header(request, name)
    if not value and name in request.headers:
        raise invalid_argument(name, f"{name} is empty; send a value or leave the header out")
    return value


def forwarded(request: Request, options: HttpOptions) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata of the call made for `request`: the caller's credentials, if any.

    - `Authorization`, as it came;
    - with `options.client_identity_secret` (the in-process adapter only), the identity of the
      connection's verified client certificate and the secret that makes the server trust it;
    - with `options.require_authorization`, a request without `Authorization` is refused here
      (401), so that it never runs under the identity the adapter's own connection presents.
    """
    authorization = _header(request, "Authorization")
    if authorization:
        return (("authorization", authorization),)
    identity = request.scope.get(SCOPE_KEY)
    if options.client_identity_secret and isinstance(identity, str) and identity:
        return (
            (CLIENT_IDENTITY_METADATA, identity),
            (ADAPTER_SECRET_METADATA, options.client_identity_secret),
        )
    if options.require_authorization:
        raise RequestRejected(
            Failure(
                grpc.StatusCode.UNAUTHENTICATED,
                "UNAUTHENTICATED",
                "this gateway needs each caller's own credentials: send 'Authorization: Bearer TOKEN'",
                metadata={"scheme": "Bearer"},
            )
        )
    return ()


def idempotency_key(request: Request) -> str:
    return _field_header(request, "Idempotency-Key")


def lease_header(request: Request) -> str:
    return _field_header(request, "Lockservice-Lease-Id")


def header_fence(request: Request) -> lock_pb2.Fence | None:
    lock_name = _field_header(request, "Lockservice-Fence-Lock")
    token = _field_header(request, "Lockservice-Fence-Token")
    if not lock_name and not token:
        return None
    if not lock_name or not token:
        raise invalid_argument(
            "Lockservice-Fence-Lock", "send Lockservice-Fence-Lock and Lockservice-Fence-Token together"
        )
    if not token.isdigit() or int(token) > _INT64[1]:
        raise invalid_argument("Lockservice-Fence-Token", "Lockservice-Fence-Token must be a fencing token")
    return lock_pb2.Fence(lock_name=lock_name, token=int(token))


def body_fence(body: JsonFields) -> lock_pb2.Fence | None:
    """The optional `fence` object of a JSON body: `{"lock_name": ..., "token": ...}`."""
    fence = body.object("fence", FENCE_FIELDS)
    if fence is None:
        return None
    return lock_pb2.Fence(lock_name=fence.string("lock_name"), token=fence.integer("token") or 0)
