"""Successful answers: JSON bodies, raw values, and the validator headers of a resource.

A resource's answer always carries `ETag` and `Last-Modified` (RFC 9110 validators, so a client
can send them back in If-Match), plus `Lockservice-Version` and `Lockservice-Mod-Revision`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from email.utils import format_datetime

from starlette.responses import Response

from lockservice.http.json_views import Json, resource_json
from lockservice.v1 import resource_pb2

__all__ = ["json_response", "not_modified", "resource_headers", "value_response", "written_response"]


def json_response(payload: Json, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=dict(headers or {}), media_type="application/json")


def resource_headers(resource: resource_pb2.Resource) -> dict[str, str]:
    headers = {
        "ETag": resource.etag,
        "Lockservice-Version": str(resource.version),
        "Lockservice-Mod-Revision": str(resource.mod_revision),
    }
    if resource.HasField("update_time"):
        headers["Last-Modified"] = format_datetime(resource.update_time.ToDatetime(tzinfo=UTC), usegmt=True)
    if resource.lease_id:
        headers["Lockservice-Lease-Id"] = resource.lease_id
    return headers


def value_response(resource: resource_pb2.Resource) -> Response:
    """The raw value, typed with exactly the content type it was written with (no charset added)."""
    headers = {**resource_headers(resource), "Content-Type": resource.content_type}
    return Response(resource.value, headers=headers)


def not_modified(resource: resource_pb2.Resource) -> Response:
    return Response(status_code=304, headers=resource_headers(resource))


def written_response(resource: resource_pb2.Resource, location: str) -> Response:
    """The new state after a write: 201 with `Location` when it created the key (version 1)."""
    headers = resource_headers(resource)
    if resource.version == 1:
        headers["Location"] = location
        return json_response(resource_json(resource), 201, headers)
    return json_response(resource_json(resource), 200, headers)
