"""Protobuf messages as lockservice's one JSON shape, written by the HTTP adapter and by the
CLI's `--json`: snake_case names as in the protos, every field present (unset is "", 0, [] or
null), integers as JSON numbers (int64 included, unlike proto3 JSON's strings: versions,
revisions, tokens and TTLs stay far below 2**53, so a JavaScript client reads them exactly),
times as RFC 3339 strings (null when unset), durations as `*_seconds` numbers, bytes as
standard base64 in `*_base64` fields.

No web framework here, so the CLI renders without loading the adapter. The OpenAPI schemas in
`lockservice/http/openapi_schemas.py` describe exactly these shapes.
"""

from __future__ import annotations

import base64
from typing import TypeAlias

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lockservice.v1 import errors_pb2, lease_pb2, lock_pb2, resource_pb2

__all__ = [
    "Json",
    "JsonObject",
    "conflict_json",
    "delete_json",
    "event_json",
    "lease_json",
    "lock_json",
    "resource_json",
    "resource_list_json",
    "revoke_json",
    "transact_json",
    "version_list_json",
    "watch_json",
]

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
JsonObject: TypeAlias = dict[str, Json]

_EVENT_TYPE_NAMES = {
    resource_pb2.WatchEvent.PUT: "PUT",
    resource_pb2.WatchEvent.DELETE: "DELETE",
    resource_pb2.WatchEvent.EXPIRE: "EXPIRE",
}


def _time(message: Message, name: str) -> str | None:
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    return value.ToJsonString()


def _seconds(message: Message, name: str) -> float | None:
    if not message.HasField(name):
        return None
    value: Duration = getattr(message, name)
    return value.ToNanoseconds() / 1e9


def resource_json(resource: resource_pb2.Resource, *, with_value: bool = False) -> JsonObject:
    """A resource's metadata; its value (base64) only when `with_value`."""
    shape: JsonObject = {
        "key": resource.key,
        "content_type": resource.content_type,
        "version": resource.version,
        "etag": resource.etag,
        "create_revision": resource.create_revision,
        "mod_revision": resource.mod_revision,
        "create_time": _time(resource, "create_time"),
        "update_time": _time(resource, "update_time"),
        "lease_id": resource.lease_id,
    }
    if with_value:
        shape["value_base64"] = base64.b64encode(resource.value).decode("ascii")
    return shape


def resource_list_json(page: resource_pb2.ListResourcesResponse, *, with_values: bool) -> JsonObject:
    return {
        "resources": [resource_json(r, with_value=with_values) for r in page.resources],
        "next_page_token": page.next_page_token,
        "revision": page.revision,
    }


def version_list_json(page: resource_pb2.ListResourceVersionsResponse, *, with_values: bool) -> JsonObject:
    return {
        "versions": [resource_json(r, with_value=with_values) for r in page.versions],
        "next_page_token": page.next_page_token,
    }


def _maybe_resource_json(
    reply: resource_pb2.DeleteResourceResponse | resource_pb2.OperationResult,
) -> JsonObject | None:
    return resource_json(reply.resource) if reply.HasField("resource") else None


def delete_json(reply: resource_pb2.DeleteResourceResponse) -> JsonObject:
    return {"resource": _maybe_resource_json(reply), "revision": reply.revision}


def transact_json(reply: resource_pb2.TransactResponse) -> JsonObject:
    return {
        "revision": reply.revision,
        "results": [
            {"resource": _maybe_resource_json(result), "deleted": result.deleted} for result in reply.results
        ],
    }


def event_json(event: resource_pb2.WatchEvent) -> JsonObject:
    """One watch event: its type name, revision and the resource with its value."""
    return {
        "type": _EVENT_TYPE_NAMES.get(event.type, "EVENT_TYPE_UNSPECIFIED"),
        "revision": event.revision,
        "resource": resource_json(event.resource, with_value=True),
    }


def watch_json(reply: resource_pb2.WatchResponse) -> JsonObject:
    """One SSE message: every event of one WatchResponse (a transaction's events stay together)."""
    return {"revision": reply.revision, "events": [event_json(event) for event in reply.events]}


def lock_json(lock: lock_pb2.Lock) -> JsonObject:
    return {
        "name": lock.name,
        "held": lock.held,
        "holder": lock.holder,
        "lease_id": lock.lease_id,
        "token": lock.token,
        "acquire_time": _time(lock, "acquire_time"),
        "expire_time": _time(lock, "expire_time"),
        "waiters": lock.waiters,
        "lock_delay_seconds": _seconds(lock, "lock_delay"),
        "available_time": _time(lock, "available_time"),
    }


def listed_lock_json(lock: lock_pb2.Lock) -> JsonObject:
    """A lock as ListLocks lists it: `lock_json`, whether its holder was withheld, its queue."""
    return {
        **lock_json(lock),
        "detail_withheld": lock.detail_withheld,
        "queue": [
            {"holder": waiter.holder, "deadline": waiter.deadline.ToJsonString()} for waiter in lock.queue
        ],
    }


def lease_json(lease: lease_pb2.Lease) -> JsonObject:
    return {
        "lease_id": lease.lease_id,
        "holder": lease.holder,
        "ttl_seconds": lease.ttl_seconds,
        "grant_time": _time(lease, "grant_time"),
        "expire_time": _time(lease, "expire_time"),
        "remaining_ms": lease.remaining_ms,
        "lock_names": list(lease.lock_names),
        "resource_keys": list(lease.resource_keys),
    }


def revoke_json(reply: lease_pb2.RevokeLeaseResponse) -> JsonObject:
    return {
        "revision": reply.revision,
        "released_locks": list(reply.released_locks),
        "deleted_keys": list(reply.deleted_keys),
    }


def conflict_json(detail: errors_pb2.ConflictDetail) -> JsonObject:
    """The current state a conflict reports, field for field as `lockservice.v1.ConflictDetail`;
    when the state is withheld from the caller, only the fields that echo the request."""
    if detail.state_withheld:
        return {
            "key": detail.key,
            "expected": detail.expected,
            "compare_index": detail.compare_index,
            "state_withheld": True,
        }
    return {
        "key": detail.key,
        "exists": detail.exists,
        "current_version": detail.current_version,
        "current_etag": detail.current_etag,
        "current_update_time": _time(detail, "current_update_time"),
        "current_mod_revision": detail.current_mod_revision,
        "expected": detail.expected,
        "compare_index": detail.compare_index,
        "holder": detail.holder,
        "current_token": detail.current_token,
        "expire_time": _time(detail, "expire_time"),
        "lease_id": detail.lease_id,
        "revision": detail.revision,
        "current_content_type": detail.current_content_type,
        "current_value_base64": (
            base64.b64encode(detail.current_value).decode("ascii")
            if detail.HasField("current_value")
            else None
        ),
    }
