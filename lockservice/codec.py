"""Model objects <-> JSON text, for what the stores keep or pass on as text: the stored answer
of a request (a request_id retry gets the first answer back, `WriteTxn.save_answer`) and the
lock notices that cross processes (PostgreSQL NOTIFY). Not the wire: that is protobuf
(`lockservice.rpc.convert`), and errors are `lockservice.rpc.status`."""

from __future__ import annotations

import base64
import json
from typing import Any

from lockservice.model import (
    DeleteResult,
    Lease,
    LeaseEnded,
    LockState,
    LockView,
    OperationResult,
    Resource,
    TransactResult,
)

__all__ = [
    "decode_delete_result",
    "decode_lease",
    "decode_lease_ended",
    "decode_lock_view",
    "decode_resource",
    "decode_transact_result",
    "encode_delete_result",
    "encode_lease",
    "encode_lease_ended",
    "encode_lock_view",
    "encode_resource",
    "encode_transact_result",
]


def _resource_to_dict(resource: Resource) -> dict[str, Any]:
    return {
        "key": resource.key,
        "value": base64.b64encode(resource.value).decode("ascii"),
        "content_type": resource.content_type,
        "version": resource.version,
        "create_revision": resource.create_revision,
        "mod_revision": resource.mod_revision,
        "create_time_us": resource.create_time_us,
        "update_time_us": resource.update_time_us,
        "lease_id": resource.lease_id,
    }


def _resource_from_dict(data: dict[str, Any]) -> Resource:
    return Resource(
        key=data["key"],
        value=base64.b64decode(data["value"]),
        content_type=data["content_type"],
        version=data["version"],
        create_revision=data["create_revision"],
        mod_revision=data["mod_revision"],
        create_time_us=data["create_time_us"],
        update_time_us=data["update_time_us"],
        lease_id=data["lease_id"],
    )


def encode_resource(resource: Resource) -> str:
    return json.dumps(_resource_to_dict(resource))


def decode_resource(answer: str) -> Resource:
    return _resource_from_dict(json.loads(answer))


def _maybe_resource_to_dict(resource: Resource | None) -> dict[str, Any] | None:
    return None if resource is None else _resource_to_dict(resource)


def _maybe_resource_from_dict(data: dict[str, Any] | None) -> Resource | None:
    return None if data is None else _resource_from_dict(data)


def encode_delete_result(result: DeleteResult) -> str:
    return json.dumps({"resource": _maybe_resource_to_dict(result.resource), "revision": result.revision})


def decode_delete_result(answer: str) -> DeleteResult:
    data = json.loads(answer)
    return DeleteResult(resource=_maybe_resource_from_dict(data["resource"]), revision=data["revision"])


def encode_transact_result(result: TransactResult) -> str:
    results = [
        {"resource": _maybe_resource_to_dict(r.resource), "deleted": r.deleted} for r in result.results
    ]
    return json.dumps({"revision": result.revision, "results": results})


def decode_transact_result(answer: str) -> TransactResult:
    data = json.loads(answer)
    results = tuple(
        OperationResult(resource=_maybe_resource_from_dict(r["resource"]), deleted=r["deleted"])
        for r in data["results"]
    )
    return TransactResult(revision=data["revision"], results=results)


def encode_lease(lease: Lease) -> str:
    return json.dumps(
        {
            "lease_id": lease.lease_id,
            "holder": lease.holder,
            "ttl_seconds": lease.ttl_seconds,
            "grant_time_us": lease.grant_time_us,
            "expire_time_us": lease.expire_time_us,
            "owner_lock": lease.owner_lock,
        }
    )


def decode_lease(answer: str) -> Lease:
    return Lease(**json.loads(answer))


def encode_lock_view(view: LockView) -> str:
    s = view.state
    state = {
        "name": s.name,
        "held": s.held,
        "holder": s.holder,
        "lease_id": s.lease_id,
        "token": s.token,
        "acquire_time_us": s.acquire_time_us,
        "lock_delay_us": s.lock_delay_us,
        "available_time_us": s.available_time_us,
        "grant_id": s.grant_id,
    }
    return json.dumps({"state": state, "expire_time_us": view.expire_time_us, "waiters": view.waiters})


def decode_lock_view(answer: str) -> LockView:
    data = json.loads(answer)
    return LockView(
        state=LockState(**data["state"]), expire_time_us=data["expire_time_us"], waiters=data["waiters"]
    )


def encode_lease_ended(ended: LeaseEnded) -> str:
    return json.dumps(
        {"revision": ended.revision, "locks": list(ended.released_locks), "keys": list(ended.deleted_keys)}
    )


def decode_lease_ended(answer: str) -> LeaseEnded:
    data = json.loads(answer)
    return LeaseEnded(
        revision=data["revision"], released_locks=tuple(data["locks"]), deleted_keys=tuple(data["keys"])
    )
