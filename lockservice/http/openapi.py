"""The OpenAPI 3.1 document of the adapter's routes (served at `/v1/openapi.json`).

Written by hand to say what HTTP adds to the protos (raw bodies, conditional headers, SSE);
`tests/http/test_openapi.py` checks it is valid and names exactly the app's routes.
"""

from __future__ import annotations

from collections.abc import Iterable

from lockservice.core.limits import Limits
from lockservice.http.openapi_schemas import INT64, components, ref
from lockservice.json_views import Json, JsonObject

__all__ = ["openapi_document"]

_CONFLICT_STATUSES = frozenset({"409", "412"})
# Any call may be refused for its credentials (401, 403), throttled (429), or meet an
# unavailable or slow service (503, 504); an unexpected fault is 500. All are problem+json.
_ANY_CALL_ERRORS = ("400", "401", "403", "429", "500", "503", "504")
_NON_NEGATIVE64: JsonObject = {**INT64, "minimum": 0}


def _json(schema: JsonObject, description: str, headers: JsonObject | None = None) -> JsonObject:
    response: JsonObject = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _resource_headers(*, location: bool = False) -> JsonObject:
    headers: JsonObject = {
        name: ref(name, "headers")
        for name in ("ETag", "Last-Modified", "Lockservice-Version", "Lockservice-Mod-Revision")
    }
    if location:
        headers["Location"] = ref("Location", "headers")
    return headers


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: JsonObject,
    *,
    errors: Iterable[str] = ("400",),
    parameters: Iterable[Json] = (),
    body: JsonObject | None = None,
    description: str = "",
) -> JsonObject:
    all_responses: JsonObject = dict(responses)
    for status in sorted({*errors, *(_ANY_CALL_ERRORS if errors else ())}):
        all_responses[status] = ref("Conflict" if status in _CONFLICT_STATUSES else "Problem", "responses")
    all_responses["default"] = ref("Problem", "responses")
    operation: JsonObject = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": all_responses,
    }
    if description:
        operation["description"] = description
    parameter_list = list(parameters)
    if parameter_list:
        operation["parameters"] = parameter_list
    if body is not None:
        operation["requestBody"] = body
    return operation


def _json_body(schema_name: str, *, required: bool = True) -> JsonObject:
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


def _param(name: str) -> JsonObject:
    return ref(name, "parameters")


_WRITE_HEADERS = [_param("IdempotencyKey"), _param("FenceLock"), _param("FenceToken")]
_WRITE_CONDITIONS = [_param("IfMatch"), _param("IfUnmodifiedSince"), _param("IfNoneMatchWrite")]

_RESOURCE_PATHS: JsonObject = {
    "/v1/resources": {
        "get": _operation(
            "listResources",
            "List resources whose key starts with a prefix, in key order",
            "resources",
            {"200": _json(ref("ResourceList"), "One page of resources.")},
            parameters=[
                _param("Prefix"),
                _param("PageSize"),
                _param("PageToken"),
                _param("View"),
            ],
        )
    },
    "/v1/resources/{key}": {
        "get": _operation(
            "getResource",
            "Read the raw value, typed with its content type, with ETag and Last-Modified",
            "resources",
            {
                "200": {
                    "description": "The raw value.",
                    "headers": _resource_headers(),
                    # Any bytes, typed with the content type they were written with.
                    "content": {"*/*": {}},
                },
                "304": {
                    "description": "Not Modified: If-None-Match names the current etag, or (without "
                    "If-None-Match) Last-Modified is not later than If-Modified-Since. No body.",
                    "headers": _resource_headers(),
                },
            },
            errors=("400", "404", "409", "412"),
            parameters=[
                _param("Key"),
                {
                    "name": "version",
                    "in": "query",
                    "description": "A retained past version (0: the latest).",
                    "schema": _NON_NEGATIVE64,
                },
                _param("IfMatch"),
                _param("IfUnmodifiedSince"),
                _param("IfNoneMatchRead"),
                _param("IfModifiedSince"),
            ],
        ),
        "put": _operation(
            "putResource",
            "Write the raw body as the value",
            "resources",
            {
                "200": _json(ref("Resource"), "Updated.", _resource_headers()),
                "201": _json(ref("Resource"), "Created (version 1).", _resource_headers(location=True)),
            },
            errors=("400", "404", "409", "412", "413", "428"),
            description=(
                "`If-None-Match: *` creates (409 RESOURCE_EXISTS if the key exists); "
                '`If-Match: "etag"` updates only that version (409 VERSION_MISMATCH with the current '
                "ETag otherwise); `If-Match: *` updates an existing key; no condition upserts, unless "
                "the server requires preconditions (428). Conditions are evaluated in the order of "
                "RFC 9110 section 13.2.2; a failed one is 412 in strict mode. The request's "
                "Content-Type is stored with the value. A fence with a create is 400."
            ),
            parameters=[
                _param("Key"),
                *_WRITE_CONDITIONS,
                _param("LeaseIdHeader"),
                *_WRITE_HEADERS,
            ],
            body={
                "required": False,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
        ),
        "delete": _operation(
            "deleteResource",
            "Delete a resource",
            "resources",
            {"200": _json(ref("DeleteResult"), "The last state of the deleted resource.")},
            errors=("400", "404", "409", "412", "428"),
            parameters=[_param("Key"), *_WRITE_CONDITIONS, *_WRITE_HEADERS],
        ),
    },
    "/v1/resources/{key}/versions": {
        "get": _operation(
            "listResourceVersions",
            "List the retained versions of a key, newest first",
            "resources",
            {"200": _json(ref("VersionList"), "One page of versions.")},
            errors=("400", "404"),
            parameters=[_param("Key"), _param("PageSize"), _param("PageToken"), _param("View")],
        )
    },
    "/v1/resources/{key}:compareAndSet": {
        "post": _operation(
            "compareAndSet",
            "Write a value only if the key is at a version, has an etag or a value, or is absent",
            "resources",
            {
                "200": _json(ref("Resource"), "Written.", _resource_headers()),
                "201": _json(ref("Resource"), "Created (version 1).", _resource_headers(location=True)),
            },
            errors=("400", "409", "413", "415"),
            parameters=[_param("Key")],
            body=_json_body("CompareAndSetRequest"),
        )
    },
    "/v1/resources:transact": {
        "post": _operation(
            "transact",
            "Evaluate every compare, then apply every put and delete, all or nothing",
            "resources",
            {"200": _json(ref("TransactResult"), "Applied as one revision.")},
            errors=("400", "404", "409", "413", "415"),
            body=_json_body("TransactRequest"),
        )
    },
    "/v1/resources:watch": {
        "get": _operation(
            "watch",
            "Stream changes to a key or prefix as Server-Sent Events",
            "resources",
            {
                "200": {
                    "description": (
                        "An event stream: each message's `id` is a revision and its `data` a WatchMessage; "
                        "a final `event: error` message carries a Problem. Last-Event-ID resumes."
                    ),
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                }
            },
            errors=("400", "501"),
            parameters=[
                {
                    "name": "key",
                    "in": "query",
                    "description": "A key, or with prefix=true the start of keys (empty: every key).",
                    "schema": ref("KeyOrPrefix"),
                },
                {"name": "prefix", "in": "query", "schema": {"type": "boolean"}},
                {"name": "start_revision", "in": "query", "schema": _NON_NEGATIVE64},
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            ],
        )
    },
}

_LOCK_PATHS: JsonObject = {
    "/v1/locks": {
        "get": _operation(
            "listLocks",
            "List the locks under a prefix the caller may read: holder, token, expiry, waiters",
            "locks",
            {
                "200": _json(
                    ref("LockList"), "One page of locks (possibly short, even empty, with a next token)."
                )
            },
            parameters=[
                _param("Prefix"),
                _param("PageSize"),
                _param("PageToken"),
                {
                    "name": "include_queue",
                    "in": "query",
                    "description": "Also list each lock's queued callers (true or false).",
                    "schema": {"type": "boolean"},
                },
            ],
        )
    },
    "/v1/locks/{name}:acquire": {
        "post": _operation(
            "acquireLock",
            "Acquire a lock (fencing token in the answer), optionally queueing for wait_timeout_seconds",
            "locks",
            {"200": _json(ref("Lock"), "Held by the caller.")},
            errors=("400", "404", "409", "415", "429"),
            parameters=[_param("LockName")],
            body=_json_body("AcquireLockRequest"),
        )
    },
    "/v1/locks/{name}:release": {
        "post": _operation(
            "releaseLock",
            "Release a lock held with a token",
            "locks",
            {"200": _json(ref("ReleaseResult"), "Released.")},
            errors=("400", "404", "409", "415"),
            parameters=[_param("LockName")],
            body=_json_body("ReleaseLockRequest"),
        )
    },
    "/v1/locks/{name}": {
        "get": _operation(
            "getLock",
            "Read a lock: holder, token, expiry, waiters",
            "locks",
            {"200": _json(ref("Lock"), "The lock.")},
            errors=("400", "404"),
            parameters=[_param("LockName")],
        )
    },
}

_LEASE_PATHS: JsonObject = {
    "/v1/leases": {
        "get": _operation(
            "listLeases",
            "List the caller's live leases in id order, each with what it holds",
            "leases",
            {"200": _json(ref("LeaseList"), "One page of leases.")},
            parameters=[
                _param("Holder"),
                _param("PageSize"),
                _param("PageToken"),
            ],
        ),
        "post": _operation(
            "grantLease",
            "Grant a lease of ttl_seconds",
            "leases",
            {"201": _json(ref("Lease"), "Granted.", {"Location": ref("Location", "headers")})},
            errors=("400", "415", "429"),
            body=_json_body("GrantLeaseRequest"),
        ),
    },
    "/v1/leases/{lease_id}": {
        "get": _operation(
            "getLease",
            "Read a lease",
            "leases",
            {"200": _json(ref("Lease"), "The lease.")},
            errors=("400", "404"),
            parameters=[_param("LeaseId")],
        )
    },
    "/v1/leases/{lease_id}:refresh": {
        "post": _operation(
            "refreshLease",
            "Refresh a lease to its full TTL",
            "leases",
            {"200": _json(ref("Lease"), "Refreshed.")},
            errors=("400", "404", "415"),
            parameters=[_param("LeaseId")],
            body=_json_body("RequestIdBody", required=False),
        )
    },
    "/v1/leases/{lease_id}:revoke": {
        "post": _operation(
            "revokeLease",
            "End a lease now: its locks are released and its resources deleted",
            "leases",
            {"200": _json(ref("RevokeResult"), "Revoked.")},
            errors=("400", "404", "415"),
            parameters=[_param("LeaseId")],
            body=_json_body("RequestIdBody", required=False),
        )
    },
}

_META_PATHS: JsonObject = {
    "/healthz": {
        "get": _operation(
            "healthz", "The adapter is alive", "health", {"200": _json(ref("Health"), "Alive.")}, errors=()
        )
    },
    "/readyz": {
        "get": _operation(
            "readyz",
            "The lockservice backend is serving",
            "health",
            {"200": _json(ref("Health"), "Ready.")},
            errors=("503",),
        )
    },
    "/v1/openapi.json": {
        "get": _operation(
            "openapi",
            "This document",
            "health",
            {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            errors=(),
        )
    },
    "/openapi.json": {
        "get": _operation(
            "openapiRoot",
            "This document, at the conventional path",
            "health",
            {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            errors=(),
        )
    },
}

_INFO: JsonObject = {
    "title": "lockservice HTTP adapter",
    "version": "v1",
    "description": (
        "Versioned resources, compare-and-set, transactions, leases and fenced locks over HTTP, "
        "in front of the lockservice gRPC API. Every error is an RFC 9457 application/problem+json "
        "body whose `type` names the reason; every conflict is 409 with the current state in "
        "`conflict` and its etag in `ETag` (412 for a failed If-Match, If-Unmodified-Since or "
        "If-None-Match in strict RFC 9110 mode)."
    ),
}


def openapi_document(server_url: str = "/", limits: Limits | None = None) -> JsonObject:
    """The document, with `servers` pointing where the adapter is mounted, and the ranges of a
    server with `limits` (the defaults unless the adapter is told its server's)."""
    return {
        "openapi": "3.1.0",
        "info": dict(_INFO),
        "servers": [{"url": server_url}],
        "paths": {**_RESOURCE_PATHS, **_LOCK_PATHS, **_LEASE_PATHS, **_META_PATHS},
        "components": components(limits or Limits()),
    }
