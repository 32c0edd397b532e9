"""Successful answers: JSON bodies, raw values, and the validator headers of a resource.

A resource's answer always carries `ETag` and `Last-Modified` (RFC 9110 validators, so a client
can send them back in If-Match or If-Unmodified-Since), plus `Lockservice-Version` and
`Lockservice-Mod-Revision`. `Last-Modified` is the update time to the second, never later than
`now`, the adapter's clock when it answers (`dates.last_modified`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from lockservice.http.dates import http_date, last_modified
from lockservice.json_views import Json, resource_json
from lockservice.v1 import resource_pb2

__all__ = ["json_response", "not_modified", "resource_headers", "value_response", "written_response"]


def json_response(payload: Json, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=dict(headers or {}), media_type="application/json")


def resource_headers(resource: resource_pb2.Resource, now: float) -> dict[str, str]:
    headers = {
        "ETag": resource.etag,
        "Lockservice-Version": str(resource.version),
        "Lockservice-Mod-Revision": str(resource.mod_revision),
    }
    modified = last_modified(resource, now)
    if modified is not None:
        headers["Last-Modified"] = http_date(modified)
    if resource.lease_id:
        headers["Lockservice-Lease-Id"] = resource.lease_id
    return headers


def value_response(resource: resource_pb2.Resource, now: float) -> Response:
    """The raw value, typed with exactly the content type it was written with (no charset added)."""
    headers = {**resource_headers(resource, now), "Content-Type": resource.content_type}
    return Response(resource.value, headers=headers)


def not_modified(resource: resource_pb2.Resource, now: float) -> Response:
    """304: the validators of the representation the client already has, and no body."""
    return Response(status_code=304, headers=resource_headers(resource, now))


def written_response(resource: resource_pb2.Resource, location: str, now: float) -> Response:
    """The new state after a write: 201 with `Location` when it created the key (version 1)."""
    headers = resource_headers(resource, now)
    if resource.version == 1:
        headers["Location"] = location
        return json_response(resource_json(resource), 201, headers)
    return json_response(resource_json(resource), 200, headers)
