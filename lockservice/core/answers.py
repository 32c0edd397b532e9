"""JSON encodings of write results, stored per request_id so a retry gets the first answer."""

from __future__ import annotations

import base64
import json
from typing import Any

from lockservice.model import DeleteResult, OperationResult, Resource, TransactResult

__all__ = [
    "decode_delete_result",
    "decode_resource",
    "decode_transact_result",
    "encode_delete_result",
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


def encode_delete_result(result: DeleteResult) -> str:
    resource = None if result.resource is None else _resource_to_dict(result.resource)
    return json.dumps({"resource": resource, "revision": result.revision})


def decode_delete_result(answer: str) -> DeleteResult:
    data = json.loads(answer)
    resource = None if data["resource"] is None else _resource_from_dict(data["resource"])
    return DeleteResult(resource=resource, revision=data["revision"])


def encode_transact_result(result: TransactResult) -> str:
    results = [{"resource": _resource_to_dict(r.resource), "deleted": r.deleted} for r in result.results]
    return json.dumps({"revision": result.revision, "results": results})


def decode_transact_result(answer: str) -> TransactResult:
    data = json.loads(answer)
    results = tuple(
        OperationResult(resource=_resource_from_dict(r["resource"]), deleted=r["deleted"])
        for r in data["results"]
    )
    return TransactResult(revision=data["revision"], results=results)
