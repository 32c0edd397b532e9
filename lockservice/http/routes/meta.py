"""Liveness, readiness and the OpenAPI document.

- `GET /healthz`: the adapter process answers (no backend call);
- `GET /readyz`: the backend's `grpc.health.v1` check says SERVING, else 503 problem+json;
- `GET /v1/openapi.json` (and `/openapi.json`): the OpenAPI 3.1 document of these routes, with
  `servers` set to where the adapter is mounted.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http.failures import Failure, RequestRejected
from lockservice.http.openapi import openapi_document
from lockservice.http.responses import json_response
from lockservice.http.routes import RouteGroup, route

__all__ = ["MetaRoutes"]


class MetaRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            route("/healthz", {"GET": self.healthz}, "healthz"),
            route("/readyz", {"GET": self.readyz}, "readyz"),
            route("/v1/openapi.json", {"GET": self.openapi}, "openapi"),
            route("/openapi.json", {"GET": self.openapi}, "openapi_root"),
        ]

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        reply = await self._backend.health.Check(
            health_pb2.HealthCheckRequest(service=""), timeout=self._options.call_timeout_seconds
        )
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RequestRejected(
                Failure(grpc.StatusCode.UNAVAILABLE, "", "the lockservice backend is not serving")
            )
        return json_response({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        server_url = request.scope.get("root_path", "") or "/"
        return json_response(openapi_document(server_url=server_url, limits=self._options.limits))
