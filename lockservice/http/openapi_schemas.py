"""OpenAPI 3.1 components: the JSON shapes of `json_views.py` and `json_requests.py`, the
problem+json body of `problems.py`, and the shared headers and parameters."""

from __future__ import annotations

import grpc

from lockservice.http.json_views import JsonObject
from lockservice.model import MAX_LOCK_DELAY_SECONDS, MAX_LOCK_WAIT_SECONDS

__all__ = ["COMPONENTS", "INT32", "INT64", "KEY", "ref"]

INT64: JsonObject = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
INT32: JsonObject = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_COUNT: JsonObject = {"type": "integer", "minimum": 0}
_STRING: JsonObject = {"type": "string"}
_BOOL: JsonObject = {"type": "boolean"}
_TIME: JsonObject = {"type": ["string", "null"], "format": "date-time"}
_BASE64: JsonObject = {"type": "string", "contentEncoding": "base64"}
_NULLABLE_BYTES: JsonObject = {"type": ["string", "null"], "contentEncoding": "base64"}
_SECONDS: JsonObject = {"type": "number", "minimum": 0, "maximum": 315_576_000_000}
_STRINGS: JsonObject = {"type": "array", "items": _STRING}


# The key syntax (resource keys and lock names): 1 to 512 bytes of A-Z a-z 0-9 - . _ ~ / : @ + = , !
# in `/`-separated segments, none empty, `.` or `..` (the server may be configured shorter).
_KEY_CHAR = r"[A-Za-z0-9\-._~:@+=,!]"
_KEY_CHAR_NOT_DOT = r"[A-Za-z0-9\-_~:@+=,!]"
_SEGMENT = f"(?:{_KEY_CHAR_NOT_DOT}|{_KEY_CHAR_NOT_DOT}{_KEY_CHAR}|\\.{_KEY_CHAR_NOT_DOT}|{_KEY_CHAR}{{3,}})"
KEY: JsonObject = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": f"^{_SEGMENT}(?:/{_SEGMENT})*$",
}


def ref(name: str, kind: str = "schemas") -> JsonObject:
    return {"$ref": f"#/components/{kind}/{name}"}


def _object(properties: JsonObject, required: list[str] | None = None, *, closed: bool = True) -> JsonObject:
    shape: JsonObject = {"type": "object", "properties": properties}
    if required:
        shape["required"] = list(required)
    if closed:
        shape["additionalProperties"] = False
    return shape


def _all(properties: JsonObject) -> list[str]:
    return list(properties)


_RESOURCE: JsonObject = {
    "key": _STRING,
    "content_type": _STRING,
    "version": INT64,
    "etag": _STRING,
    "create_revision": INT64,
    "mod_revision": INT64,
    "create_time": _TIME,
    "update_time": _TIME,
    "lease_id": _STRING,
}
_CONFLICT: JsonObject = {
    "key": _STRING,
    "exists": _BOOL,
    "current_version": INT64,
    "current_etag": _STRING,
    "current_update_time": _TIME,
    "current_mod_revision": INT64,
    "expected": _STRING,
    "compare_index": INT32,
    "holder": _STRING,
    "current_token": INT64,
    "expire_time": _TIME,
    "lease_id": _STRING,
    "revision": INT64,
    "current_content_type": _STRING,
    "current_value_base64": _NULLABLE_BYTES,
}
# A conflict whose state the caller may not read (no read right on its key): what it echoes.
_WITHHELD_CONFLICT: JsonObject = {
    "key": _STRING,
    "expected": _STRING,
    "compare_index": INT32,
    "state_withheld": {"type": "boolean", "enum": [True]},
}
_LOCK: JsonObject = {
    "name": _STRING,
    "held": _BOOL,
    "holder": _STRING,
    "lease_id": _STRING,
    "token": INT64,
    "acquire_time": _TIME,
    "expire_time": _TIME,
    "waiters": INT32,
    "lock_delay_seconds": {"type": ["number", "null"]},
    "available_time": _TIME,
}
_LEASE: JsonObject = {
    "lease_id": _STRING,
    "holder": _STRING,
    "ttl_seconds": INT64,
    "grant_time": _TIME,
    "expire_time": _TIME,
    "remaining_ms": INT64,
    "lock_names": _STRINGS,
    "resource_keys": _STRINGS,
}
_PROBLEM: JsonObject = {
    "type": {"type": "string", "format": "uri-reference", "description": "One URI per reason."},
    "title": _STRING,
    "status": {"type": "integer", "minimum": 100, "maximum": 599},
    "detail": _STRING,
    "instance": _STRING,
    "code": {"type": "string", "enum": [code.name for code in grpc.StatusCode], "description": "gRPC code."},
    "reason": {"type": "string", "description": "lockservice.v1.ErrorReason name, or an HTTP-only reason."},
    "metadata": {"type": "object", "additionalProperties": _STRING},
    "conflict": ref("Conflict"),
}

_SCHEMAS: JsonObject = {
    "Resource": _object(
        {**_RESOURCE, "value_base64": {**_BASE64, "description": "Only with view=full."}}, _all(_RESOURCE)
    ),
    "ResourceList": _object(
        {
            "resources": {"type": "array", "items": ref("Resource")},
            "next_page_token": _STRING,
            "revision": INT64,
        },
        ["resources", "next_page_token", "revision"],
    ),
    "VersionList": _object(
        {"versions": {"type": "array", "items": ref("Resource")}, "next_page_token": _STRING},
        ["versions", "next_page_token"],
    ),
    "DeleteResult": _object(
        {"resource": {"oneOf": [ref("Resource"), {"type": "null"}]}, "revision": INT64},
        ["resource", "revision"],
    ),
    "Fence": _object({"lock_name": KEY, "token": INT64}, ["lock_name", "token"]),
    "CompareAndSetRequest": _object(
        {
            "expected_version": INT64,
            "expected_etag": _STRING,
            "expected_value": _STRING,
            "expected_value_base64": _BASE64,
            "expect_absent": _BOOL,
            "value": {**_STRING, "description": "The new value as UTF-8 text (or use value_base64)."},
            "value_base64": _BASE64,
            "content_type": _STRING,
            "fence": ref("Fence"),
            "lease_id": _STRING,
            "request_id": _STRING,
        }
    ),
    "Compare": _object(
        {
            "key": _STRING,
            "version": INT64,
            "etag": _STRING,
            "value": _STRING,
            "value_base64": _BASE64,
            "absent": _BOOL,
        },
        ["key"],
    ),
    "PutOperation": _object(
        {
            "key": _STRING,
            "value": _STRING,
            "value_base64": _BASE64,
            "content_type": _STRING,
            "lease_id": _STRING,
        },
        ["key"],
    ),
    "DeleteOperation": _object({"key": KEY}, ["key"]),
    "Operation": _object({"put": ref("PutOperation"), "delete": ref("DeleteOperation")}),
    "TransactRequest": _object(
        {
            "compares": {"type": "array", "items": ref("Compare")},
            "operations": {"type": "array", "items": ref("Operation")},
            "fence": ref("Fence"),
            "request_id": _STRING,
        }
    ),
    "TransactResult": _object(
        {
            "revision": INT64,
            "results": {
                "type": "array",
                "items": _object(
                    {"resource": {"oneOf": [ref("Resource"), {"type": "null"}]}, "deleted": _BOOL},
                    ["resource", "deleted"],
                ),
            },
        },
        ["revision", "results"],
    ),
    "WatchMessage": _object(
        {
            "revision": INT64,
            "events": {
                "type": "array",
                "items": _object(
                    {
                        "type": {
                            "type": "string",
                            "enum": ["PUT", "DELETE", "EXPIRE", "EVENT_TYPE_UNSPECIFIED"],
                        },
                        "revision": INT64,
                        "resource": ref("Resource"),
                    },
                    ["type", "revision", "resource"],
                ),
            },
        },
        ["revision", "events"],
    ),
    "Lock": _object(_LOCK, _all(_LOCK)),
    "ReleaseResult": _object({"lock": ref("Lock")}, ["lock"]),
    "AcquireLockRequest": _object(
        {
            "lease_id": {**_STRING, "description": "Hold the lock under this lease (or give ttl_seconds)."},
            "ttl_seconds": {**INT64, "description": "Create a lease of this TTL for the lock."},
            "holder": _STRING,
            "wait_timeout_seconds": {
                **_SECONDS,
                "maximum": MAX_LOCK_WAIT_SECONDS,
                "description": "Queue this long for the lock; 0 tries once.",
            },
            "lock_delay_seconds": {**_SECONDS, "maximum": MAX_LOCK_DELAY_SECONDS},
            "request_id": _STRING,
        }
    ),
    "ReleaseLockRequest": _object({"token": INT64, "request_id": _STRING}),
    "Lease": _object(_LEASE, _all(_LEASE)),
    "GrantLeaseRequest": _object({"ttl_seconds": INT64, "holder": _STRING, "request_id": _STRING}),
    "RequestIdBody": _object({"request_id": _STRING}),
    "RevokeResult": _object(
        {"revision": INT64, "released_locks": _STRINGS, "deleted_keys": _STRINGS},
        ["revision", "released_locks", "deleted_keys"],
    ),
    "Health": _object({"status": _STRING}, ["status"]),
    "Conflict": {
        "description": "The current state, or (state_withheld) only the echo of the request when the "
        "caller has no read right on the key or lock.",
        "oneOf": [_object(_CONFLICT, _all(_CONFLICT)), _object(_WITHHELD_CONFLICT, _all(_WITHHELD_CONFLICT))],
    },
    "Problem": _object(_PROBLEM, ["type", "title", "status", "detail", "instance", "code"], closed=False),
}

_ENTITY_TAG_PATTERN = r'^\s*(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)\s*$'
_HEADERS: JsonObject = {
    "ETag": {"description": "The resource's current strong entity tag.", "required": True, "schema": _STRING},
    "Last-Modified": {
        "description": "When the resource was last written (HTTP-date).",
        "required": True,
        "schema": _STRING,
    },
    "Lockservice-Version": {
        "description": "The resource's version.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Lockservice-Mod-Revision": {
        "description": "The store revision of the last write.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Location": {
        "description": "Where the created resource or lease is read.",
        "required": True,
        "schema": _STRING,
    },
}
_PARAMETERS: JsonObject = {
    "Key": {
        "name": "key",
        "in": "path",
        "required": True,
        "description": "The resource key; it may contain `/`.",
        "schema": KEY,
    },
    "LockName": {"name": "name", "in": "path", "required": True, "schema": KEY},
    "LeaseId": {"name": "lease_id", "in": "path", "required": True, "schema": _STRING},
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "description": "`*` or one strong entity tag: write only if it is current (409; 412 in strict mode).",
        "schema": {"type": "string", "pattern": _ENTITY_TAG_PATTERN},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "The request_id (AIP-155): a retry with the same key returns the first answer.",
        "schema": _STRING,
    },
    "FenceLock": {"name": "Lockservice-Fence-Lock", "in": "header", "schema": _STRING},
    "FenceToken": {
        "name": "Lockservice-Fence-Token",
        "in": "header",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "PageSize": {"name": "page_size", "in": "query", "schema": {**INT32, "minimum": 0}},
    "PageToken": {"name": "page_token", "in": "query", "schema": _STRING},
    "View": {
        "name": "view",
        "in": "query",
        "description": "`full` adds each value as value_base64.",
        "schema": {"type": "string", "enum": ["basic", "full"]},
    },
}
_RESPONSES: JsonObject = {
    "Problem": {
        "description": "An RFC 9457 problem; `type` names the reason, `conflict` the current state.",
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    },
    "Conflict": {
        "description": "The request conflicts with the current state (`conflict` has it; `ETag` its etag).",
        "headers": {"ETag": {"schema": _STRING}},
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    },
}

COMPONENTS: JsonObject = {
    "schemas": _SCHEMAS,
    "headers": _HEADERS,
    "parameters": _PARAMETERS,
    "responses": _RESPONSES,
}
