"""Leases as JSON: `POST /v1/leases` (grant), `GET /v1/leases?holder=...` (ListLeases),
`GET /v1/leases/{lease_id}`,
`POST /v1/leases/{lease_id}:refresh`, `POST /v1/leases/{lease_id}:revoke`.

gRPC's KeepAlive stream has no HTTP form: an HTTP client refreshes before the TTL runs out.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http import json_requests, params
from lockservice.http.bodies import read_json
from lockservice.http.listing_json import lease_list_json
from lockservice.http.responses import json_response
from lockservice.http.routes import RouteGroup, keyed_route, route
from lockservice.json_views import lease_json, revoke_json
from lockservice.v1 import lease_pb2

__all__ = ["LeaseRoutes"]


class LeaseRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            route("/v1/leases", {"POST": self.grant, "GET": self.list}, "leases"),
            keyed_route(
                "/v1/leases",
                "lease_id",
                {"GET": self.get},
                {":refresh": {"POST": self.refresh}, ":revoke": {"POST": self.revoke}},
                "lease",
            ),
        ]

    async def grant(self, request: Request) -> Response:
        body = await read_json(request, self._options.max_json_bytes, json_requests.GRANT_FIELDS)
        lease = await self._backend.leases.GrantLease(
            json_requests.grant_request(body), timeout=self._timeout, metadata=self._forwarded(request)
        )
        return json_response(lease_json(lease), 201, {"Location": f"{request.url.path}/{lease.lease_id}"})

    async def refresh(self, request: Request) -> Response:
        lease = await self._backend.leases.RefreshLease(
            lease_pb2.RefreshLeaseRequest(**await self._lease_and_request_id(request)),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(lease_json(lease))

    async def revoke(self, request: Request) -> Response:
        reply = await self._backend.leases.RevokeLease(
            lease_pb2.RevokeLeaseRequest(**await self._lease_and_request_id(request)),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(revoke_json(reply))

    async def _lease_and_request_id(self, request: Request) -> dict[str, str]:
        """The lease in the path and the optional `{"request_id"}` body of refresh and revoke."""
        body = await read_json(request, self._options.max_json_bytes, json_requests.REQUEST_ID_FIELDS)
        return {"lease_id": request.path_params["lease_id"], "request_id": body.string("request_id")}

    async def get(self, request: Request) -> Response:
        lease = await self._backend.leases.GetLease(
            lease_pb2.GetLeaseRequest(lease_id=request.path_params["lease_id"]),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(lease_json(lease))

    async def list(self, request: Request) -> Response:
        reply = await self._backend.leases.ListLeases(
            lease_pb2.ListLeasesRequest(
                holder=request.query_params.get("holder", ""),
                page_size=params.query_int(request, "page_size", bits=32) or 0,
                page_token=request.query_params.get("page_token", ""),
            ),
            timeout=self._timeout,
            metadata=self._forwarded(request),
        )
        return json_response(lease_list_json(reply))
