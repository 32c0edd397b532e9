"""LockService: designed in the protos, answered UNIMPLEMENTED / NOT_IMPLEMENTED by this build."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from lockservice.errors import FeatureNotImplemented
from lockservice.rpc.calls import unary_call
from lockservice.v1 import lock_pb2_grpc

__all__ = ["LockServicer"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _not_served(method: str) -> FeatureNotImplemented:
    return FeatureNotImplemented(
        f"LockService.{method} is designed in the protos but not served by this build yet"
    )


class LockServicer(lock_pb2_grpc.LockServiceServicer):
    @unary_call("AcquireLock")
    async def AcquireLock(self, request: Any, context: Context) -> Any:
        raise _not_served("AcquireLock")

    @unary_call("ReleaseLock")
    async def ReleaseLock(self, request: Any, context: Context) -> Any:
        raise _not_served("ReleaseLock")

    @unary_call("GetLock")
    async def GetLock(self, request: Any, context: Context) -> Any:
        raise _not_served("GetLock")
