"""`watch()` streams that know their revision and resume by themselves after a disconnect.

The server first answers a Watch with an empty response at the store's current revision (the
watch is *established*), then replays retained changes from `start_revision` if one was given,
then sends live changes, each response one revision's events. A `Watch` counts the revision it
has delivered everything up to; when the stream breaks with UNAVAILABLE (the server restarted,
drained, or the connection dropped) it opens a new one from the next revision, so the caller
sees every change once, in order, with no gap: up to `reconnect.attempts` tries in a row with
exponential backoff and jitter (the count starts again once a new stream answers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol

import grpc

from lockservice_client._proto import resource_pb2
from lockservice_client.backoff import Backoff
from lockservice_client.errors import Unavailable, error_from_rpc

__all__ = ["DEFAULT_RECONNECT", "AsyncWatch", "Watch", "WatchCursor"]

# About 20 s of trying in all (0.1 s doubling to 2 s, jittered): a server restart fits in it.
DEFAULT_RECONNECT = Backoff(attempts=12, initial=0.1, maximum=2.0)


class WatchCursor:
    """Where a watch stands: which request opens its next stream, what each response delivers.

    `revision` is the store revision up to which every matching change has been delivered (0
    until the watch is established, or `start_revision - 1` while a replay has delivered nothing).
    """

    def __init__(self, key: str, prefix: bool, start_revision: int, timeout: float | None) -> None:
        self.key = key
        self.prefix = prefix
        self.revision = max(start_revision - 1, 0)
        # None until the first stream is established (a new store's revision is 0).
        self.established_revision: int | None = None
        self._from_now = start_revision == 0
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def request(self) -> tuple[resource_pb2.WatchRequest, float | None]:
        """The request for the next stream, and its timeout (what is left of the watch's)."""
        start = 0 if self._from_now else self.revision + 1
        request = resource_pb2.WatchRequest(key=self.key, prefix=self.prefix, start_revision=start)
        timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        return request, timeout

    def deliver(self, response: resource_pb2.WatchResponse) -> list[resource_pb2.WatchEvent]:
        """The events of `response` to hand to the caller, counting its revision as delivered."""
        if not response.events:
            # The stream is established; from now on a new stream resumes after this revision.
            if self.established_revision is None:
                self.established_revision = response.revision
            if self._from_now:
                self._from_now = False
                self.revision = response.revision
            return []
        if response.revision <= self.revision:
            return []  # already delivered before a reconnect
        self.revision = response.revision
        return list(response.events)


class WatchStream(Protocol):
    """A started Watch call (what a sync stub returns): its responses, and a way to cancel it."""

    def __next__(self) -> resource_pb2.WatchResponse: ...

    def cancel(self) -> bool: ...


class AsyncWatchStream(Protocol):
    """A started grpc.aio Watch call."""

    def __aiter__(self) -> AsyncIterator[resource_pb2.WatchResponse]: ...

    def cancel(self) -> bool: ...


OpenStream = Callable[[resource_pb2.WatchRequest, float | None], WatchStream]
OpenAsyncStream = Callable[[resource_pb2.WatchRequest, float | None], AsyncWatchStream]


class _Resuming:
    """What `Watch` and `AsyncWatch` share: the cursor, the events not yet handed out, and
    the decision to reconnect after a failed stream."""

    def __init__(self, cursor: WatchCursor, reconnect: Backoff | None) -> None:
        self._cursor = cursor
        self._reconnect = reconnect
        self._pending: list[resource_pb2.WatchEvent] = []
        self._closed = False

    @property
    def revision(self) -> int:
        """Every matching change up to this store revision has been handed out."""
        return self._cursor.revision

    def _pause_before_retry(
        self, failure: StopIteration | StopAsyncIteration | grpc.RpcError, retry: int
    ) -> float:
        """Seconds to wait before the next stream; raises the typed error (and ends the watch)
        unless the failure is UNAVAILABLE and tries are left."""
        if isinstance(failure, grpc.RpcError):
            error, cause = error_from_rpc(failure), failure
        else:
            # The server ends a watch only with an error: a stream that just stops was cut.
            error, cause = Unavailable("the watch stream ended", code=grpc.StatusCode.UNAVAILABLE), None
        reconnect = self._reconnect
        if reconnect is None or not isinstance(error, Unavailable) or retry >= reconnect.attempts - 1:
            self._closed = True
            raise error from cause
        return reconnect.delay(retry)


class Watch(_Resuming, Iterator[resource_pb2.WatchEvent]):
    """The events of `Client.watch()`, in revision order; `close()` (or leaving a `with`) ends it.

    `revision`: every matching change up to it has been yielded. `established()` waits until
    the server has registered the watch and returns the store revision it did so at.
    """

    def __init__(self, open_stream: OpenStream, cursor: WatchCursor, reconnect: Backoff | None) -> None:
        super().__init__(cursor, reconnect)
        self._open = open_stream
        self._stream: WatchStream | None = None

    def established(self) -> int:
        """Blocks until the watch is established; the store revision it was established at."""
        while self._cursor.established_revision is None:
            self._pending.extend(self._next_response_events())
        return self._cursor.established_revision

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> resource_pb2.WatchEvent:
        while not self._pending:
            self._pending.extend(self._next_response_events())
        return self._pending.pop(0)

    def _next_response_events(self) -> list[resource_pb2.WatchEvent]:
        retry = 0
        while not self._closed:
            if self._stream is None:
                self._stream = self._open(*self._cursor.request())
            try:
                response = next(self._stream)
            except (StopIteration, grpc.RpcError) as failure:
                self._drop_stream()
                time.sleep(self._pause_before_retry(failure, retry))
                retry += 1
            else:
                return self._cursor.deliver(response)
        raise StopIteration

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()

    def close(self) -> None:
        """Cancels the stream; the iteration ends."""
        self._closed = True
        self._drop_stream()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncWatch(_Resuming, AsyncIterator[resource_pb2.WatchEvent]):
    """`Watch` for asyncio: `async for`, `await established()`, `await aclose()`."""

    def __init__(self, open_stream: OpenAsyncStream, cursor: WatchCursor, reconnect: Backoff | None) -> None:
        super().__init__(cursor, reconnect)
        self._open = open_stream
        self._stream: tuple[AsyncWatchStream, AsyncIterator[resource_pb2.WatchResponse]] | None = None

    async def established(self) -> int:
        while self._cursor.established_revision is None:
            self._pending.extend(await self._next_response_events())
        return self._cursor.established_revision

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> resource_pb2.WatchEvent:
        while not self._pending:
            self._pending.extend(await self._next_response_events())
        return self._pending.pop(0)

    async def _next_response_events(self) -> list[resource_pb2.WatchEvent]:
        retry = 0
        while not self._closed:
            if self._stream is None:
                call = self._open(*self._cursor.request())
                self._stream = call, aiter(call)
            try:
                response = await anext(self._stream[1])
            except (StopAsyncIteration, grpc.RpcError) as failure:
                self._drop_stream()
                await asyncio.sleep(self._pause_before_retry(failure, retry))
                retry += 1
            else:
                return self._cursor.deliver(response)
        raise StopAsyncIteration

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream[0].cancel()

    async def aclose(self) -> None:
        """Cancels the stream; the iteration ends."""
        self._closed = True
        self._drop_stream()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
