"""OpenAPI 3.1 components: the JSON shapes of `lockservice/json_views.py` and
`json_requests.py`, the problem+json body of `problems.py`, and the shared headers and parameters.

Every constraint the service enforces that JSON Schema can say is here, with the server's own
limits (`components(limits)`): the key syntax, lease ids, request ids, TTL and wait ranges, one
member of each oneof. What it cannot say (a page token's validity, one key per transaction
operation, the order conditional headers are evaluated in) is in the descriptions.
"""

from __future__ import annotations

import grpc

from lockservice.core.limits import Limits
from lockservice.json_views import Json, JsonObject
from lockservice.model import MAX_ETAG_CHARS

__all__ = ["INT32", "INT64", "KEY", "components", "key_schema", "ref"]

INT64: JsonObject = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
INT32: JsonObject = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_POSITIVE64: JsonObject = {**INT64, "minimum": 1}
_STRING: JsonObject = {"type": "string"}
_BOOL: JsonObject = {"type": "boolean"}
_TIME: JsonObject = {"type": ["string", "null"], "format": "date-time"}
_BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_BASE64: JsonObject = {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
_NULLABLE_BYTES: JsonObject = {"type": ["string", "null"], "contentEncoding": "base64"}
_STRINGS: JsonObject = {"type": "array", "items": _STRING}
# An expected etag: as the server issued it, so never longer than MAX_ETAG_CHARS (it is echoed).
_EXPECTED_ETAG: JsonObject = {"type": "string", "maxLength": MAX_ETAG_CHARS, "pattern": "^[ -~]*$"}
_DECIMAL = "^[0-9]+$"


# The key syntax (resource keys and lock names): 1 to 512 bytes of A-Z a-z 0-9 - . _ ~ / : @ + = , !
# in `/`-separated segments, none empty, `.` or `..` (the server may be configured shorter).
_KEY_CHAR = r"[A-Za-z0-9\-._~:@+=,!]"
_KEY_CHAR_NOT_DOT = r"[A-Za-z0-9\-_~:@+=,!]"
_SEGMENT = f"(?:{_KEY_CHAR_NOT_DOT}|{_KEY_CHAR_NOT_DOT}{_KEY_CHAR}|\\.{_KEY_CHAR_NOT_DOT}|{_KEY_CHAR}{{3,}})"
_KEY_PATTERN = f"^{_SEGMENT}(?:/{_SEGMENT})*$"
_LEASE_ID_PATTERN = "(?:[0-9a-f]{16})?[0-9a-f]{32}"


def key_schema(max_key_bytes: int) -> JsonObject:
    """A resource key or lock name (every character is one byte)."""
    return {"type": "string", "minLength": 1, "maxLength": max_key_bytes, "pattern": _KEY_PATTERN}


KEY = key_schema(Limits().max_key_bytes)


def _decimal_at_most(limit: int) -> str:
    """A regex (no anchors) for the decimal numbers 1..`limit`, leading zeros allowed."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same_length = []
    for index, digit in enumerate(digits):
        rest = len(digits) - index - 1
        low = "1" if index == 0 else "0"
        if int(digit) > int(low):
            tail = f"[0-9]{{{rest}}}" if rest else ""
            same_length.append(f"{digits[:index]}[{low}-{int(digit) - 1}]{tail}")
    same_length.append(digits)
    return "0*(?:" + "|".join([p for p in [shorter, *same_length] if p]) + ")"


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


def _nullable(schema: JsonObject) -> JsonObject:
    """`schema` or null: as in proto3 JSON, a request member that is null is not given."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _request(properties: JsonObject, required: list[str] | None = None) -> JsonObject:
    """A request body object: unknown members refused, optional ones nullable."""
    required = required or []
    return _object(
        {
            name: _nullable(shape) if name not in required and isinstance(shape, dict) else shape
            for name, shape in properties.items()
        },
        required,
    )


def _given(*names: str) -> JsonObject:
    """Every one of `names` is present and not null."""
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


def _at_most_one(*names: str) -> JsonObject:
    """No two of `names` given together (a oneof as JSON members)."""
    pairs: list[Json] = [_given(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    return {"not": {"anyOf": pairs}}


def _exactly_one(*names: str) -> list[Json]:
    """`allOf` members: one of `names` is given, and no two."""
    return [{"anyOf": [_given(name) for name in names]}, _at_most_one(*names)]


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
# A lock as ListLocks lists it: holder, lease and token empty when `detail_withheld`.
_LISTED_LOCK: JsonObject = {
    **_LOCK,
    "detail_withheld": _BOOL,
    "queue": {
        "type": "array",
        "items": _object({"holder": _STRING, "deadline": _TIME}, ["holder", "deadline"]),
    },
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
_RESPONSE_SCHEMAS: JsonObject = {
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
    "Lease": _object(_LEASE, _all(_LEASE)),
    "LockList": _object(
        {
            "locks": {"type": "array", "items": ref("ListedLock")},
            "next_page_token": _STRING,
        },
        ["locks", "next_page_token"],
    ),
    "ListedLock": _object(_LISTED_LOCK, _all(_LISTED_LOCK)),
    "LeaseList": _object(
        {"leases": {"type": "array", "items": ref("Lease")}, "next_page_token": _STRING},
        ["leases", "next_page_token"],
    ),
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


class _Fields:
    """The request field schemas under one server's limits."""

    def __init__(self, limits: Limits) -> None:
        self.key = key_schema(limits.max_key_bytes)
        self.prefix: JsonObject = {
            "type": "string",
            "maxLength": limits.max_key_bytes,
            "pattern": r"^[A-Za-z0-9\-._~/:@+=,!]*$",
        }
        self.lease_id: JsonObject = {"type": "string", "pattern": f"^{_LEASE_ID_PATTERN}$"}
        self.lease_id_or_none: JsonObject = {
            "type": "string",
            "description": "Empty: no lease.",
            "pattern": f"^(?:{_LEASE_ID_PATTERN})?$",
        }
        self.request_id: JsonObject = {
            "type": "string",
            "description": "AIP-155: a retry with the same id returns the first answer; empty: none.",
            "maxLength": limits.max_request_id_chars,
            "pattern": "^[!-~]*$",
        }
        self.holder: JsonObject = {"type": "string", "maxLength": 256, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
        self.content_type: JsonObject = {"type": "string", "maxLength": 255, "pattern": "^[ -~]*$"}
        self.ttl: JsonObject = {
            "type": "integer",
            "format": "int64",
            "minimum": limits.min_lease_ttl_seconds,
            "maximum": limits.max_lease_ttl_seconds,
        }
        self.wait: JsonObject = {"type": "number", "minimum": 0, "maximum": limits.max_lock_wait_seconds}
        self.delay: JsonObject = {"type": "number", "minimum": 0, "maximum": limits.max_lock_delay_seconds}
        self.items: int = limits.max_transaction_items
        self.page_size: JsonObject = {
            **INT32,
            "minimum": 0,
            "description": f"0: {limits.default_page_size}; more than {limits.max_page_size} counts as "
            f"{limits.max_page_size}.",
        }


def _request_schemas(fields: _Fields) -> JsonObject:
    value = {**_STRING, "description": "The value as UTF-8 text (or give value_base64)."}
    return {
        "KeyOrPrefix": fields.prefix,
        "Fence": _request({"lock_name": fields.key, "token": _POSITIVE64}, ["lock_name", "token"]),
        "CompareAndSetRequest": {
            **_request(
                {
                    "expected_version": _POSITIVE64,
                    "expected_etag": _EXPECTED_ETAG,
                    "expected_value": _STRING,
                    "expected_value_base64": _BASE64,
                    "expect_absent": {"type": "boolean", "description": "true: write only if absent."},
                    "value": value,
                    "value_base64": _BASE64,
                    "content_type": fields.content_type,
                    "fence": ref("Fence"),
                    "lease_id": fields.lease_id_or_none,
                    "request_id": fields.request_id,
                }
            ),
            "allOf": [
                *_exactly_one(
                    "expected_version",
                    "expected_etag",
                    "expected_value",
                    "expected_value_base64",
                    "expect_absent",
                ),
                _at_most_one("value", "value_base64"),
            ],
        },
        "Compare": {
            **_request(
                {
                    "key": fields.key,
                    "version": _POSITIVE64,
                    "etag": _EXPECTED_ETAG,
                    "value": _STRING,
                    "value_base64": _BASE64,
                    "absent": _BOOL,
                },
                ["key"],
            ),
            "allOf": _exactly_one("version", "etag", "value", "value_base64", "absent"),
        },
        "PutOperation": {
            **_request(
                {
                    "key": fields.key,
                    "value": value,
                    "value_base64": _BASE64,
                    "content_type": fields.content_type,
                    "lease_id": fields.lease_id_or_none,
                },
                ["key"],
            ),
            **_at_most_one("value", "value_base64"),
        },
        "DeleteOperation": _request({"key": fields.key}, ["key"]),
        "Operation": {
            **_request({"put": ref("PutOperation"), "delete": ref("DeleteOperation")}),
            "allOf": _exactly_one("put", "delete"),
        },
        "TransactRequest": _request(
            {
                "compares": {"type": "array", "maxItems": fields.items, "items": ref("Compare")},
                "operations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": fields.items,
                    "items": ref("Operation"),
                    "description": "Each key at most once.",
                },
                "fence": ref("Fence"),
                "request_id": fields.request_id,
            },
            ["operations"],
        ),
        "AcquireLockRequest": {
            **_request(
                {
                    "lease_id": {**fields.lease_id, "description": "Hold the lock under this lease."},
                    "ttl_seconds": {
                        **fields.ttl,
                        "description": "Or: a lease of this TTL for the lock alone.",
                    },
                    "holder": fields.holder,
                    "wait_timeout_seconds": {
                        **fields.wait,
                        "description": "Queue this long for the lock; 0 tries once.",
                    },
                    "lock_delay_seconds": fields.delay,
                    "request_id": fields.request_id,
                }
            ),
            "allOf": _exactly_one("lease_id", "ttl_seconds"),
        },
        "ReleaseLockRequest": _request({"token": _POSITIVE64, "request_id": fields.request_id}, ["token"]),
        "GrantLeaseRequest": _request(
            {"ttl_seconds": fields.ttl, "holder": fields.holder, "request_id": fields.request_id},
            ["ttl_seconds"],
        ),
        "RequestIdBody": _request({"request_id": fields.request_id}),
    }


_ETAG = '"[\\x21\\x23-\\x7e]*"'
_HEADERS: JsonObject = {
    "ETag": {
        "description": "The resource's current strong entity tag.",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{_ETAG}$"},
    },
    "Last-Modified": {
        "description": "When the resource was last written (HTTP-date), to the second and never "
        "later than the response's Date.",
        "required": True,
        "schema": _STRING,
    },
    "Lockservice-Version": {
        "description": "The resource's version.",
        "required": True,
        "schema": {"type": "string", "pattern": _DECIMAL},
    },
    "Lockservice-Mod-Revision": {
        "description": "The store revision of the last write.",
        "required": True,
        "schema": {"type": "string", "pattern": _DECIMAL},
    },
    "Location": {
        "description": "Where the created resource or lease is read.",
        "required": True,
        "schema": _STRING,
    },
}


def _parameters(fields: _Fields) -> JsonObject:
    tags = f"(?:W/)?{_ETAG}"
    tag_list = f"^(?:\\*|{tags}(?: *, *{tags})*)$"
    return {
        "Key": {
            "name": "key",
            "in": "path",
            "required": True,
            "description": "The resource key; it may contain `/` and `:` (percent-encode a `:` or `/` "
            "before a key's own `:compareAndSet` or `/versions` ending).",
            "schema": fields.key,
        },
        "LockName": {"name": "name", "in": "path", "required": True, "schema": fields.key},
        "LeaseId": {"name": "lease_id", "in": "path", "required": True, "schema": fields.lease_id},
        "Prefix": {"name": "prefix", "in": "query", "schema": ref("KeyOrPrefix")},
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "description": "`*` or a list of entity tags, compared strongly (a weak tag never "
            "matches): proceed only if one is current, else 409 VERSION_MISMATCH (412 in strict mode). "
            "A write with one strong tag is compared atomically by the service; any other list is "
            "evaluated on the state read, and the write expects exactly that state.",
            "schema": {"type": "string", "pattern": tag_list},
        },
        "IfNoneMatchRead": {
            "name": "If-None-Match",
            "in": "header",
            "description": "`*` or a list of entity tags, compared weakly: 304 if one is current.",
            "schema": {"type": "string", "pattern": tag_list},
        },
        "IfNoneMatchWrite": {
            "name": "If-None-Match",
            "in": "header",
            "description": "`*` (create only) or a list of entity tags, compared weakly: if the key "
            "exists and one names its etag, 409 RESOURCE_EXISTS (412 in strict mode).",
            "schema": {"type": "string", "pattern": tag_list},
        },
        "IfUnmodifiedSince": {
            "name": "If-Unmodified-Since",
            "in": "header",
            "description": "An HTTP-date, ignored with If-Match or when invalid: proceed only if "
            "Last-Modified is not later, else 409 VERSION_MISMATCH (412 in strict mode).",
            "schema": _STRING,
        },
        "IfModifiedSince": {
            "name": "If-Modified-Since",
            "in": "header",
            "description": "An HTTP-date, ignored with If-None-Match, when invalid or later than the "
            "server's clock: 304 if Last-Modified is not later.",
            "schema": _STRING,
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "description": "The request_id (AIP-155): a retry with the same key returns the first answer. "
            "Only beside a condition the service compares itself (no condition, one strong If-Match "
            "tag, If-Match: *, If-None-Match: *); beside any other, 400.",
            "schema": {**fields.request_id, "minLength": 1},
        },
        "Holder": {
            "name": "holder",
            "in": "query",
            "description": "Only leases granted to this holder.",
            "schema": fields.holder,
        },
        "LeaseIdHeader": {
            "name": "Lockservice-Lease-Id",
            "in": "header",
            "description": "Attach the resource to this lease.",
            "schema": fields.lease_id,
        },
        "FenceLock": {
            "name": "Lockservice-Fence-Lock",
            "in": "header",
            "description": "With Lockservice-Fence-Token: write only while this token holds this lock.",
            "schema": fields.key,
        },
        "FenceToken": {
            "name": "Lockservice-Fence-Token",
            "in": "header",
            "schema": {"type": "string", "pattern": f"^{_decimal_at_most(2**63 - 1)}$"},
        },
        "PageSize": {"name": "page_size", "in": "query", "schema": fields.page_size},
        "PageToken": {
            "name": "page_token",
            "in": "query",
            "description": "The previous page's next_page_token, the query's other fields unchanged.",
            "schema": _STRING,
        },
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
    "MethodNotAllowed": {
        "description": "The path takes other methods; `Allow` lists them.",
        "headers": {"Allow": {"required": True, "schema": _STRING}},
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    },
}


def components(limits: Limits) -> JsonObject:
    """The components of the document served by an adapter in front of a server with `limits`."""
    fields = _Fields(limits)
    return {
        "schemas": {**_RESPONSE_SCHEMAS, **_request_schemas(fields)},
        "headers": _HEADERS,
        "parameters": _parameters(fields),
        "responses": _RESPONSES,
    }
