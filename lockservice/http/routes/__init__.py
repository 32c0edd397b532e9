"""The adapter's routes, one module per concern; each translates HTTP to one gRPC call and back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockservice.http import params
from lockservice.http.backend import Backend
from lockservice.http.options import HttpOptions

__all__ = ["Endpoint", "RouteGroup", "route"]

Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, handlers: Mapping[str, Endpoint], name: str) -> Route:
    """One route for every method a path takes, so a wrong method gets 405 with the full `Allow`."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers), name=name)


class RouteGroup:
    """The routes of one concern, over the app's backend and options."""

    def __init__(self, backend: Backend, options: HttpOptions) -> None:
        self._backend = backend
        self._options = options
        self._timeout = options.call_timeout_seconds

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def _forwarded(self, request: Request) -> tuple[tuple[str, str], ...]:
        """The metadata of the gRPC call made for `request` (`params.forwarded`)."""
        return params.forwarded(request, self._options)
