"""The adapter's routes, one module per concern; each translates HTTP to one gRPC call and back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from lockservice.http import params
from lockservice.http.backend import Backend
from lockservice.http.options import HttpOptions

__all__ = ["Endpoint", "KeyedRoute", "RouteGroup", "keyed_route", "route"]

Endpoint = Callable[[Request], Awaitable[Response]]
Handlers = Mapping[str, Endpoint]


def _allow(handlers: Handlers) -> str:
    methods = list(handlers)
    if "GET" in methods:
        methods.append("HEAD")
    return ", ".join(methods)


async def _dispatch(request: Request, handlers: Handlers) -> Response:
    method = "GET" if request.method == "HEAD" else request.method
    handler = handlers.get(method)
    if handler is None:
        raise HTTPException(405, headers={"Allow": _allow(handlers)})
    return await handler(request)


def route(path: str, handlers: Handlers, name: str) -> Route:
    """One route for every method a path takes, so a wrong method gets 405 with the full `Allow`."""

    async def dispatch(request: Request) -> Response:
        return await _dispatch(request, handlers)

    return Route(path, dispatch, methods=list(handlers), name=name)


class KeyedRoute(Route):
    """A `keyed_route`; `operations` lists its `(METHOD, path template)` pairs."""

    operations: frozenset[tuple[str, str]]


def keyed_route(
    prefix: str, param: str, handlers: Handlers, endings: Mapping[str, Handlers], name: str
) -> KeyedRoute:
    """`{prefix}/{param}` where the param is a key or lock name, which may contain `/` and `:`.

    A path whose raw (not percent-decoded) form ends with one of `endings` (`:acquire`,
    `/versions`, ...) is that ending's operation on the key before it; any other path is the
    key's own (`handlers`). So `.../a:acquire` acquires lock `a`, and `.../a%3Aacquire` names the
    lock `a:acquire`. A wrong method is 405 with the methods of the operation the path names.
    """

    async def dispatch(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        raw = raw_path.split(b"?", 1)[0]
        value: str = request.path_params[param]
        for ending, ending_handlers in endings.items():
            if raw.endswith(ending.encode()) and value.endswith(ending):
                request.scope["path_params"] = {param: value.removesuffix(ending)}
                return await _dispatch(request, ending_handlers)
        return await _dispatch(request, handlers)

    # Every method reaches `dispatch` (an ASGI app, not an endpoint function, so Starlette
    # filters none): only it knows which operation, and so which `Allow`, the path names.
    keyed = KeyedRoute(f"{prefix}/{{{param}:path}}", _AnyMethod(request_response(dispatch)), name=name)
    keyed.operations = frozenset(
        (method, f"{prefix}/{{{param}}}{ending}")
        for ending, group in {"": handlers, **endings}.items()
        for method in group
    )
    return keyed


class _AnyMethod:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


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
