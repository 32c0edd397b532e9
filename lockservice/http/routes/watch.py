"""Watch as Server-Sent Events: `GET /v1/resources:watch?key=&prefix=&start_revision=`.

Each WatchResponse is one SSE message: `data` is its events as JSON (a transaction's events
stay in one message), `id` the revision the client has seen every change up to. The first
message has no events: the watch is established. A reconnecting EventSource
sends `Last-Event-ID`, and the watch resumes after that revision. An idle stream gets a comment
line every `watch_heartbeat_seconds`. An error the service answers at once (a compacted revision,
a bad key) is a plain problem+json response; one that ends a running stream is a final
`event: error` message whose data is the same problem+json body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lockservice.http import params
from lockservice.http.failures import invalid_argument
from lockservice.http.problems import problem_for
from lockservice.http.routes import RouteGroup, route
from lockservice.json_views import Json, watch_json
from lockservice.v1 import resource_pb2

__all__ = ["WatchRoutes"]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_HEARTBEAT = b": keepalive\n\n"


def _sse(data: Json, *, event: str = "", event_id: str = "") -> bytes:
    lines = [f"id: {event_id}"] if event_id else []
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def _start_revision(request: Request) -> int:
    """`start_revision`, else the revision after `Last-Event-ID`, else 0 (from now)."""
    start = params.query_int(request, "start_revision")
    if start is not None:
        return start
    last_event_id = request.headers.get("last-event-id", "").strip()
    if not last_event_id:
        return 0
    if not last_event_id.isdigit() or int(last_event_id) >= 2**63 - 1:
        raise invalid_argument("Last-Event-ID", "Last-Event-ID must be a revision from this stream")
    return int(last_event_id) + 1


class WatchRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [route("/v1/resources:watch", {"GET": self.watch}, "watch")]

    async def watch(self, request: Request) -> Response:
        watch = resource_pb2.WatchRequest(
            key=request.query_params.get("key", ""),
            prefix=params.query_bool(request, "prefix"),
            start_revision=_start_revision(request),
        )
        call = self._backend.resources.Watch(watch, metadata=self._forwarded(request))
        first: asyncio.Future[Any] = asyncio.ensure_future(call.read())
        try:
            await asyncio.wait_for(asyncio.shield(first), self._options.watch_open_seconds)
        except TimeoutError:
            pass  # the stream is open and quiet: start answering
        except BaseException:
            call.cancel()
            raise  # answered as problem+json by the app's handler
        stream = self._messages(call, first, request.url.path, watch.start_revision)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _messages(
        self,
        call: grpc.aio.UnaryStreamCall[resource_pb2.WatchRequest, resource_pb2.WatchResponse],
        pending: asyncio.Future[Any],
        instance: str,
        start_revision: int,
    ) -> AsyncIterator[bytes]:
        # Each message's id is the revision the client has seen every change up to, so that
        # Last-Event-ID resumes without a gap: the opening (empty) message says "now" for a
        # watch from now, but "just before start_revision" for a replay still to come.
        seen = start_revision - 1 if start_revision > 0 else None
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self._options.watch_heartbeat_seconds)
                if not done:
                    yield _HEARTBEAT
                    continue
                try:
                    reply = pending.result()
                except grpc.RpcError as error:
                    problem = problem_for(error, instance=instance, options=self._options.problems)
                    yield _sse(problem.body, event="error")
                    return
                if reply is grpc.aio.EOF:
                    return
                if reply.events or seen is None:
                    seen = reply.revision
                yield _sse(watch_json(reply), event_id=str(seen))
                pending = asyncio.ensure_future(call.read())
        finally:
            pending.cancel()
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await pending
