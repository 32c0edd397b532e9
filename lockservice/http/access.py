"""The standalone gateway's access log and metrics: one log line per request, and `/metrics`.

Each request is logged once when its response ends (a Watch stream: when it closes) as
`http.request` with `method`, `route` (the route template: `/v1/resources/{key:path}`, so a
line never grows with keys), `path`, `status`, `duration_ms` and `request_id` (the caller's
`X-Request-Id` when it is 1 to 128 printable ASCII characters, else a fresh one; either way
returned in the response's `X-Request-Id`). Never bodies, query strings or headers: values,
tokens and certificates stay out of the log.

`/metrics` on the gateway's own port serves Prometheus text: requests by method, route and
status (`lockservice_http_requests_total`) and latency by method and route
(`lockservice_http_request_duration_seconds`), and the process's memory, CPU and garbage
collection. The in-process adapter of `lockservice serve`
does not use this: its calls are logged and measured by the gRPC server they reach.
"""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # as the server's (rpc/metrics.py)

_log = structlog.get_logger("lockservice.http")
_UNMATCHED = "unmatched"
_REQUEST_ID_HEADER = b"x-request-id"
# A request through the gateway costs a gRPC call more than the call itself; a watch, its life.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if 1 <= len(text) <= 128 and text.isascii() and text.isprintable():
                return text
    return uuid.uuid4().hex


class AccessLog:
    """ASGI middleware around the gateway's app: logs and measures every HTTP request, and
    answers `GET /metrics` itself."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self._requests = Counter(
            "lockservice_http_requests",
            "HTTP requests the gateway answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "lockservice_http_request_duration_seconds",
            "HTTP request latency by method and route template (a watch stream: its whole life).",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            await self._metrics(send)
            return
        began = time.monotonic()
        request_id = _request_id(scope)
        status = 500  # what the server answers when the app fails before its response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            seconds = time.monotonic() - began
            route = getattr(scope.get("route"), "path", _UNMATCHED)
            method = scope["method"]
            self._requests.labels(method, route, str(status)).inc()
            self._latency.labels(method, route).observe(seconds)
            _log.info(
                "http.request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 3),
                request_id=request_id,
            )

    async def _metrics(self, send: Send) -> None:
        body = generate_latest(self.registry)
        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
