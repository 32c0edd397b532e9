"""JSON endpoints for conditional writes: compare-and-set on one key, transactions on many.

- `POST /v1/resources/{key}:compareAndSet`: write `value` if the key is at `expected_version`,
  has `expected_etag` or `expected_value`, or is absent (`expect_absent`);
- `POST /v1/resources:transact`: `compares`, then `operations` (puts and deletes), all or nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http import json_requests
from lockservice.http.bodies import read_json
from lockservice.http.responses import json_response, written_response
from lockservice.http.routes import RouteGroup, route
from lockservice.json_views import transact_json

__all__ = ["OperationRoutes"]


class OperationRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            route("/v1/resources:transact", {"POST": self.transact}, "transact"),
        ]  # compare_and_set is routed with the resource's other paths (`resources.py`)

    async def compare_and_set(self, request: Request) -> Response:
        body = await read_json(request, self._options.max_json_bytes, json_requests.CAS_FIELDS)
        cas = json_requests.compare_and_set_request(request.path_params["key"], body)
        resource = await self._backend.resources.CompareAndSet(
            cas, timeout=self._timeout, metadata=self._forwarded(request)
        )
        location = request.url.path.removesuffix(":compareAndSet")
        return written_response(resource, location, self._options.clock())

    async def transact(self, request: Request) -> Response:
        body = await read_json(request, self._options.max_json_bytes, json_requests.TRANSACT_FIELDS)
        reply = await self._backend.resources.Transact(
            json_requests.transact_request(body), timeout=self._timeout, metadata=self._forwarded(request)
        )
        return json_response(transact_json(reply))
