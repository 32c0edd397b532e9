"""Resources as plain HTTP: the raw value with its validators, conditional PUT and DELETE,
listing and history as JSON.

- `GET /v1/resources/{key}` (`?version=N` for a retained past version), with the four
  conditional headers (304 Not Modified, or the conflict of a false If-Match);
- `PUT /v1/resources/{key}`: the raw body; `If-None-Match: *` creates, `If-Match: "etag"`
  updates that version only, `If-Match: *` updates an existing key, none upserts; a list of
  tags or a date is evaluated on the state read, and the write expects that state
  (`preconditions.py`);
- `DELETE /v1/resources/{key}`, with the same conditions;
- `GET /v1/resources?prefix=&page_size=&page_token=&view=`;
- `GET /v1/resources/{key}/versions?page_size=&page_token=&view=`.

Keys may contain `/` and `:`. A literal `/versions` ending lists versions and a literal
`:compareAndSet` ending is compare-and-set (`operations.py`); a key that ends that way is named
by percent-encoding the slash or colon (`.../docs%2Fversions`, `.../a%3AcompareAndSet`).
"""

from __future__ import annotations

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http import params
from lockservice.http.bodies import read_value
from lockservice.http.failures import failure_from_rpc_error, invalid_argument
from lockservice.http.preconditions import (
    CreateOnly,
    MatchEtag,
    MustExist,
    ReadFirst,
    Unconditional,
    WriteCondition,
    read_conditions,
    write_condition,
)
from lockservice.http.responses import json_response, not_modified, value_response, written_response
from lockservice.http.routes import RouteGroup, keyed_route, route
from lockservice.http.routes.operations import OperationRoutes
from lockservice.json_views import delete_json, resource_list_json, version_list_json
from lockservice.v1 import resource_pb2

__all__ = ["ResourceRoutes"]


class ResourceRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        operations = OperationRoutes(self._backend, self._options)
        return [
            route("/v1/resources", {"GET": self.list}, "list_resources"),
            keyed_route(
                "/v1/resources",
                "key",
                {"GET": self.read, "PUT": self.put, "DELETE": self.delete},
                {
                    "/versions": {"GET": self.list_versions},
                    ":compareAndSet": {"POST": operations.compare_and_set},
                },
                "resource",
            ),
        ]

    async def read(self, request: Request) -> Response:
        key: str = request.path_params["key"]
        conditions = read_conditions(request.headers)
        get = resource_pb2.GetResourceRequest(key=key, version=params.query_int(request, "version") or 0)
        resource = await self._backend.resources.GetResource(
            get, timeout=self._timeout, metadata=self._forwarded(request)
        )
        now = self._options.clock()
        if conditions.not_modified(resource, now):
            return not_modified(resource, now)
        return value_response(resource, now)

    async def list(self, request: Request) -> Response:
        page = params.page_fields(request)
        reply = await self._backend.resources.ListResources(
            resource_pb2.ListResourcesRequest(prefix=request.query_params.get("prefix", ""), **page),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(
            resource_list_json(reply, with_values=page["view"] == resource_pb2.RESOURCE_VIEW_FULL)
        )

    async def list_versions(self, request: Request) -> Response:
        page = params.page_fields(request)
        reply = await self._backend.resources.ListResourceVersions(
            resource_pb2.ListResourceVersionsRequest(key=request.path_params["key"], **page),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(
            version_list_json(reply, with_values=page["view"] == resource_pb2.RESOURCE_VIEW_FULL)
        )

    async def put(self, request: Request) -> Response:
        key: str = request.path_params["key"]
        condition = await self._pinned(
            request, write_condition(request.headers, "PUT", required=self._options.require_preconditions)
        )
        fence = params.header_fence(request)
        value = await read_value(request, self._options.max_value_bytes)
        content_type = request.headers.get("content-type", "")
        lease_id, request_id = params.lease_header(request), params.idempotency_key(request)
        if isinstance(condition, CreateOnly):
            if fence is not None:
                raise invalid_argument(
                    "Lockservice-Fence-Lock",
                    "a fence guards updates and deletes; to create under a lock, "
                    "POST :compareAndSet with expect_absent and a fence",
                )
            created = await self._backend.resources.CreateResource(
                resource_pb2.CreateResourceRequest(
                    key=key, value=value, content_type=content_type, lease_id=lease_id, request_id=request_id
                ),
                timeout=self._timeout,
                metadata=self._forwarded(request),
            )
            return written_response(created, request.url.path, self._options.clock())
        update = resource_pb2.UpdateResourceRequest(
            key=key, value=value, content_type=content_type, lease_id=lease_id, request_id=request_id
        )
        _expect(update, condition)
        if fence is not None:
            update.fence.CopyFrom(fence)
        updated = await self._backend.resources.UpdateResource(
            update, timeout=self._timeout, metadata=self._forwarded(request)
        )
        return written_response(updated, request.url.path, self._options.clock())

    async def delete(self, request: Request) -> Response:
        condition = await self._pinned(
            request, write_condition(request.headers, "DELETE", required=self._options.require_preconditions)
        )
        delete = resource_pb2.DeleteResourceRequest(
            key=request.path_params["key"], request_id=params.idempotency_key(request)
        )
        if isinstance(condition, MatchEtag):
            delete.expected_etag = condition.etag
        fence = params.header_fence(request)
        if fence is not None:
            delete.fence.CopyFrom(fence)
        reply = await self._backend.resources.DeleteResource(
            delete, timeout=self._timeout, metadata=self._forwarded(request)
        )
        return json_response(delete_json(reply))

    async def _pinned(
        self, request: Request, condition: WriteCondition
    ) -> Unconditional | CreateOnly | MustExist | MatchEtag:
        """`condition`, or for a `ReadFirst` the condition pinned to the key's state read now.

        Not with an Idempotency-Key: a retry would be evaluated on the state its first attempt
        wrote and pinned to another etag, so the service could not answer it as it answered the
        first (the request would differ); refused before anything is read or written."""
        if not isinstance(condition, ReadFirst):
            return condition
        if params.idempotency_key(request):
            raise invalid_argument(
                "Idempotency-Key",
                "Idempotency-Key needs a condition the service compares itself: one strong tag "
                "or * in If-Match, If-None-Match: * (PUT), or none",
            )
        get = resource_pb2.GetResourceRequest(key=request.path_params["key"])
        try:
            current = await self._backend.resources.GetResource(
                get, timeout=self._timeout, metadata=self._forwarded(request)
            )
        except grpc.RpcError as error:
            if not condition.may_create or failure_from_rpc_error(error).reason != "RESOURCE_NOT_FOUND":
                raise
            return condition.pin(None, self._options.clock())
        return condition.pin(current, self._options.clock())


def _expect(
    update: resource_pb2.UpdateResourceRequest, condition: Unconditional | MustExist | MatchEtag
) -> None:
    """If-Match: "etag" expects that etag; If-Match: * needs the key; no header is an upsert."""
    if isinstance(condition, MatchEtag):
        update.expected_etag = condition.etag
    elif not isinstance(condition, MustExist):
        update.allow_missing = True
