"""Locks as JSON: `POST /v1/locks/{name}:acquire`, `POST /v1/locks/{name}:release`,
`GET /v1/locks/{name}`, and `GET /v1/locks?prefix=...` (ListLocks). Lock names follow the key
syntax (they may contain `/` and `:`): a literal `:acquire` or `:release` ending is that method,
a percent-encoded one (`%3A`) is part of the name."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http import json_requests, params
from lockservice.http.bodies import read_json
from lockservice.http.disconnects import unless_client_leaves
from lockservice.http.listing_json import lock_list_json
from lockservice.http.responses import json_response
from lockservice.http.routes import RouteGroup, keyed_route, route
from lockservice.json_views import lock_json
from lockservice.v1 import lock_pb2

__all__ = ["LockRoutes"]


class LockRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            route("/v1/locks", {"GET": self.list}, "locks"),
            keyed_route(
                "/v1/locks",
                "name",
                {"GET": self.get},
                {":acquire": {"POST": self.acquire}, ":release": {"POST": self.release}},
                "lock",
            ),
        ]

    async def acquire(self, request: Request) -> Response:
        body = await read_json(request, self._options.max_json_bytes, json_requests.ACQUIRE_FIELDS)
        acquire = json_requests.acquire_request(request.path_params["name"], body)
        # The call may queue for `wait_timeout`; its deadline leaves the service that long.
        waits = acquire.wait_timeout.ToNanoseconds() / 1e9
        call = self._backend.locks.AcquireLock(
            acquire, timeout=waits + self._timeout, metadata=self._forwarded(request)
        )
        lock = await unless_client_leaves(request, call)
        return json_response(lock_json(lock))

    async def release(self, request: Request) -> Response:
        body = await read_json(request, self._options.max_json_bytes, json_requests.RELEASE_FIELDS)
        reply = await self._backend.locks.ReleaseLock(
            json_requests.release_request(request.path_params["name"], body),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response({"lock": lock_json(reply.lock)})

    async def get(self, request: Request) -> Response:
        lock = await self._backend.locks.GetLock(
            lock_pb2.GetLockRequest(name=request.path_params["name"]),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(lock_json(lock))

    async def list(self, request: Request) -> Response:
        reply = await self._backend.locks.ListLocks(
            lock_pb2.ListLocksRequest(
                prefix=request.query_params.get("prefix", ""),
                page_size=params.query_int(request, "page_size", bits=32) or 0,
                page_token=request.query_params.get("page_token", ""),
                include_queue=params.query_bool(request, "include_queue"),
            ),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(lock_list_json(reply))
