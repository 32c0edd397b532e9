"""The wrapper every RPC handler runs in: one log line per call, and errors turned into statuses.

Domain errors become their mapped status with rich details; anything unexpected is logged with
its traceback and answered INTERNAL with a generic message. Applied as a decorator rather than a
`grpc.aio.ServerInterceptor` because an aio interceptor costs an extra coroutine and handler
lookup on every call, on the hot path of every RPC.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog

from lockservice.errors import LockserviceError
from lockservice.rpc.status import grpc_code_for, internal_status, to_grpc_status

__all__ = ["streaming_call", "unary_call"]

_log = structlog.get_logger("lockservice.rpc")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def _subject(request: Any) -> str:
    for field in ("key", "name", "lease_id", "prefix"):
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    return ""


def unary_call(
    method: str,
) -> Callable[
    [Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]],
    Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
]:
    def decorate(
        handler: Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
    ) -> Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
        @functools.wraps(handler)
        async def wrapped(self: Self, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
            started = time.perf_counter()
            try:
                response = await handler(self, request, context)
            except LockserviceError as error:
                _log_call(method, request, started, grpc_code_for(error).name, error.reason)
                await context.abort_with_status(to_grpc_status(error))
                raise  # pragma: no cover - abort_with_status raises
            except grpc.aio.AbortError:
                raise
            except Exception:
                _log.exception("rpc failed", method=method, subject=_subject(request))
                _log_call(method, request, started, "INTERNAL", "INTERNAL_ERROR")
                await context.abort_with_status(internal_status())
                raise  # pragma: no cover - abort_with_status raises
            _log_call(method, request, started, "OK", "")
            return response

        return wrapped

    return decorate


def streaming_call(
    method: str,
) -> Callable[
    [Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]],
    Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
]:
    """The same wrapper for server-streaming and bidirectional handlers (async generators)."""

    def decorate(
        handler: Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
    ) -> Callable[[Self, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
        @functools.wraps(handler)
        async def wrapped(
            self: Self, request: Req, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Resp]:
            started = time.perf_counter()
            try:
                async for response in handler(self, request, context):
                    yield response
            except LockserviceError as error:
                _log_call(method, request, started, grpc_code_for(error).name, error.reason)
                await context.abort_with_status(to_grpc_status(error))
                raise  # pragma: no cover - abort_with_status raises
            except grpc.aio.AbortError:
                raise
            except Exception:
                _log.exception("rpc failed", method=method, subject=_subject(request))
                _log_call(method, request, started, "INTERNAL", "INTERNAL_ERROR")
                await context.abort_with_status(internal_status())
                raise  # pragma: no cover - abort_with_status raises
            _log_call(method, request, started, "OK", "")

        return wrapped

    return decorate


def _log_call(method: str, request: Any, started: float, code: str, reason: str) -> None:
    _log.info(
        "rpc",
        method=method,
        code=code,
        reason=reason or None,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        subject=_subject(request) or None,
        request_id=getattr(request, "request_id", None) or None,
    )
