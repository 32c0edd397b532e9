"""The ASGI application: Starlette routes over a grpc.aio channel to lockservice.

    app = create_app(target="127.0.0.1:50051")            # standalone, or
    outer.mount("/lockservice", create_app(target=...))   # inside a Starlette / FastAPI app

Every failure, whether the service's, the adapter's (bad JSON, bad header, wrong method, unknown
route) or an unexpected fault, is answered as problem+json through `problems.py`: never a
traceback, never a 500 for a client's mistake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from lockservice.http.backend import Backend
from lockservice.http.failures import Failure, RequestRejected, method_not_allowed, route_not_found
from lockservice.http.options import HttpOptions
from lockservice.http.problems import problem_response, rpc_error_handler
from lockservice.http.routes.leases import LeaseRoutes
from lockservice.http.routes.locks import LockRoutes
from lockservice.http.routes.meta import MetaRoutes
from lockservice.http.routes.operations import OperationRoutes
from lockservice.http.routes.resources import ResourceRoutes
from lockservice.http.routes.watch import WatchRoutes

__all__ = ["create_app"]

_INTERNAL = Failure(
    grpc.StatusCode.INTERNAL, "INTERNAL_ERROR", "internal error in the HTTP adapter; it logged the cause"
)


def _starlette_failure(request: Request, exc: HTTPException) -> Failure:
    """Starlette's own refusals (no route, wrong method) in the adapter's reasons."""
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return method_not_allowed(request.method, allow).failure
    if exc.status_code == 404:
        return route_not_found(request.url.path).failure
    code = grpc.StatusCode.INVALID_ARGUMENT if exc.status_code < 500 else grpc.StatusCode.INTERNAL
    return Failure(code, "", exc.detail)


def create_app(
    target: str | None = None,
    *,
    channel: grpc.aio.Channel | None = None,
    options: HttpOptions | None = None,
) -> Starlette:
    """The adapter for the lockservice at `target` ("HOST:PORT", "unix:PATH"), or over a
    grpc.aio `channel` the caller owns. The app closes a channel it made when its lifespan ends
    (standalone); a mounted app's channel lives as long as the process."""
    options = options or HttpOptions()
    backend = Backend(target, channel=channel)
    route_groups = (ResourceRoutes, OperationRoutes, WatchRoutes, LockRoutes, LeaseRoutes, MetaRoutes)
    routes = [r for group in route_groups for r in group(backend, options).routes()]
    translate = rpc_error_handler(options.problems)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return problem_response(request, _starlette_failure(request, exc), options.problems)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer, so the server logs the traceback.
        return problem_response(request, _INTERNAL, options.problems)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await backend.aclose()

    app = Starlette(
        routes=routes,
        exception_handlers={
            grpc.RpcError: translate,
            RequestRejected: translate,
            HTTPException: starlette_error,
            Exception: unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.lockservice_backend = backend
    return app
