"""The wrapper every RPC handler runs in: admission, one log line per call, metrics, and errors
turned into statuses.

Admission refuses new calls while the server drains (UNAVAILABLE / SHUTTING_DOWN), then, when
authentication is on, authenticates the caller and checks its rights (`rpc.auth`), and holds
streams to the per-client quotas. Domain errors become their mapped status with rich details;
anything unexpected is logged with its traceback and answered INTERNAL with a generic message.
The call's deadline is handed to the stores through `lockservice.deadlines`, so a store gives up
in time for the caller to see UNAVAILABLE rather than DEADLINE_EXCEEDED.

Applied as a decorator rather than a `grpc.aio.ServerInterceptor` because an aio interceptor
costs an extra coroutine and handler lookup on every call, on the hot path of every RPC. What is
off costs one attribute test: the server installs its `CallPolicy` once at start.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import structlog

from lockservice.core.quotas import StreamQuota
from lockservice.deadlines import begin_call, end_call
from lockservice.errors import InvalidRequestId, LockserviceError, ShuttingDown
from lockservice.rpc.auth import Guard, visibility
from lockservice.rpc.decoding import CorruptMessage, corrupt_message_error
from lockservice.rpc.metrics import RpcMetrics
from lockservice.rpc.status import grpc_code_for, internal_status, to_grpc_status, without_retry

__all__ = ["REQUEST_ID_METADATA", "CallPolicy", "install", "streaming_call", "unary_call"]

_log = structlog.get_logger("lockservice.rpc")

REQUEST_ID_METADATA = "x-request-id"
_MAX_REQUEST_ID_CHARS = 128
# An UNAVAILABLE answered with less of the caller's deadline left than this is not worth a retry:
# the client is told not to (else its retry ends in DEADLINE_EXCEEDED, hiding the cause).
_RETRY_FLOOR_SECONDS = 1.0

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(slots=True)
class CallPolicy:
    """What every call goes through; None for what is off."""

    guard: Guard | None = None
    metrics: RpcMetrics | None = None
    quota: StreamQuota | None = None
    # Whether the one info line per call is written (--log-level debug or info): when not, its
    # fields are not even gathered.
    log_calls: bool = True
    draining: bool = False
    # Calls and streams admitted and not yet answered or ended; the drain waits for none to be
    # left (watches and lock waits it ends itself; a KeepAlive stream lasts until its client
    # closes it or the grace period ends, so the client's lease stays alive while it fails over).
    in_flight: int = 0
    # When a call was last refused for the drain (time.monotonic()); the drain waits for quiet.
    last_refused: float = 0.0


_policy = CallPolicy()


def install(policy: CallPolicy) -> CallPolicy:
    """Makes `policy` the one every call goes through (once per process, at start)."""
    global _policy  # noqa: PLW0603 - one server per process, configured once
    _policy = policy
    return policy


def _subject(request: Any) -> str:
    for field in ("key", "name", "lease_id", "prefix"):
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _correlation_id(context: Context) -> str:
    """The caller's `x-request-id` metadata, to tie our log line to theirs; "" when not sent.
    Not the request's `request_id` field, which is the idempotency key of a write (AIP-155)."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_METADATA:
            text = str(value)
            if not 0 < len(text) <= _MAX_REQUEST_ID_CHARS or not text.isascii() or not text.isprintable():
                raise InvalidRequestId(
                    f"{REQUEST_ID_METADATA} metadata must be 1 to {_MAX_REQUEST_ID_CHARS} printable "
                    "ASCII characters",
                    metadata={"field": REQUEST_ID_METADATA, "limit": str(_MAX_REQUEST_ID_CHARS)},
                )
            return text
    return ""


def _admit(policy: CallPolicy, method: str, request: Any, context: Context) -> str | None:
    """Refuses the call while draining, or to a caller without the rights; returns the caller's
    identity (None when authentication is off)."""
    if policy.draining:
        policy.last_refused = time.monotonic()
        raise ShuttingDown("the server is shutting down; retry on another replica or after the restart")
    if policy.guard is None:
        return None
    return policy.guard.admit(method, request, context)


async def _parsed(messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for message in messages:
        if type(message) is CorruptMessage:
            raise corrupt_message_error(message)
        yield message


def _client(identity: str | None, context: Context) -> str:
    """Whom a stream counts against: the identity, else the peer's address without its port."""
    if identity is not None:
        return identity
    peer: str = context.peer() or ""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class _Call:
    """The bookkeeping of one call: its start, its ids, and its one log line. Two ids, logged
    under their own keys: `request_id`, the idempotency key a write carries in its request
    (a retry has the same one), and `correlation_id`, the caller's `x-request-id` metadata."""

    __slots__ = ("correlation_id", "method", "request", "request_id", "started")

    def __init__(self, method: str, request: Any) -> None:
        self.started = time.perf_counter()
        self.method = method
        self.request = request
        self.request_id: str = getattr(request, "request_id", "")
        self.correlation_id = ""

    def read_metadata(self, context: Context) -> None:
        self.correlation_id = _correlation_id(context)

    def finish(self, policy: CallPolicy, code: str, reason: str) -> None:
        seconds = time.perf_counter() - self.started
        if policy.log_calls:
            _log.info(
                "rpc",
                method=self.method,
                code=code,
                reason=reason or None,
                duration_ms=round(seconds * 1000, 3),
                subject=_subject(self.request) or None,
                request_id=self.request_id or None,
                correlation_id=self.correlation_id or None,
            )
        if policy.metrics is not None:
            policy.metrics.observe_call(self.method, self.request, code, reason, seconds)

    async def fail(self, policy: CallPolicy, context: Context, error: Exception) -> None:
        """Answers `error` as its status (a domain error, with only what the caller may see of
        any conflict's state) or INTERNAL (anything else)."""
        if isinstance(error, LockserviceError):
            code = grpc_code_for(error)
            self.finish(policy, code.name, error.reason)
            status = to_grpc_status(visibility().error(error))
            if code is grpc.StatusCode.UNAVAILABLE:
                remaining = context.time_remaining()
                if remaining is not None and remaining < _RETRY_FLOOR_SECONDS:
                    status = without_retry(status)
            await context.abort_with_status(status)
        else:
            _log.error(
                "rpc failed",
                method=self.method,
                subject=_subject(self.request),
                request_id=self.request_id or None,
                correlation_id=self.correlation_id or None,
                exc_info=error,
            )
            self.finish(policy, "INTERNAL", "INTERNAL_ERROR")
            await context.abort_with_status(internal_status())


def unary_call(
    method: str,
) -> Callable[
    [Callable[[Self, Req, Context], Awaitable[Resp]]],
    Callable[[Self, Req, Context], Awaitable[Resp]],
]:
    def decorate(
        handler: Callable[[Self, Req, Context], Awaitable[Resp]],
    ) -> Callable[[Self, Req, Context], Awaitable[Resp]]:
        @functools.wraps(handler)
        async def wrapped(self: Self, request: Req, context: Context) -> Resp:
            policy = _policy
            policy.in_flight += 1
            call = _Call(method, request)
            deadline = begin_call(context.time_remaining())
            try:
                call.read_metadata(context)
                if isinstance(request, CorruptMessage):
                    raise corrupt_message_error(request)
                _admit(policy, method, request, context)
                response = await handler(self, request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await call.fail(policy, context, error)
                raise  # pragma: no cover - abort_with_status raises
            finally:
                end_call(deadline)
                policy.in_flight -= 1
            call.finish(policy, "OK", "")
            return response

        return wrapped

    return decorate


def streaming_call(
    method: str,
) -> Callable[
    [Callable[[Self, Req, Context], AsyncIterator[Resp]]],
    Callable[[Self, Req, Context], AsyncIterator[Resp]],
]:
    """The same wrapper for server-streaming and bidirectional handlers (async generators),
    plus the per-client stream quotas."""
    watch = method == "Watch"

    def decorate(
        handler: Callable[[Self, Req, Context], AsyncIterator[Resp]],
    ) -> Callable[[Self, Req, Context], AsyncIterator[Resp]]:
        @functools.wraps(handler)
        async def wrapped(self: Self, request: Req, context: Context) -> AsyncIterator[Resp]:
            policy = _policy
            quota = policy.quota
            policy.in_flight += 1
            call = _Call(method, request)
            deadline = begin_call(context.time_remaining())
            try:
                call.read_metadata(context)
                if isinstance(request, CorruptMessage):
                    raise corrupt_message_error(request)
                if hasattr(request, "__aiter__"):  # a client stream: check each message
                    request = cast(Req, _parsed(cast(AsyncIterator[Any], request)))
                identity = _admit(policy, method, request, context)
                client = "" if quota is None else _client(identity, context)
                if quota is not None:
                    quota.open(client, watch=watch)
                try:
                    async for response in handler(self, request, context):
                        yield response
                finally:
                    if quota is not None:
                        quota.close(client, watch=watch)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await call.fail(policy, context, error)
                raise  # pragma: no cover - abort_with_status raises
            finally:
                # A generator closed by the garbage collector runs this in another context.
                with contextlib.suppress(ValueError):
                    end_call(deadline)
                policy.in_flight -= 1
            call.finish(policy, "OK", "")

        return wrapped

    return decorate
