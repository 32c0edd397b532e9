"""LeaseService: designed in the protos, answered UNIMPLEMENTED / NOT_IMPLEMENTED by this build."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from lockservice.errors import FeatureNotImplemented
from lockservice.rpc.calls import streaming_call, unary_call
from lockservice.v1 import lease_pb2_grpc

__all__ = ["LeaseServicer"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _not_served(method: str) -> FeatureNotImplemented:
    return FeatureNotImplemented(
        f"LeaseService.{method} is designed in the protos but not served by this build yet"
    )


class LeaseServicer(lease_pb2_grpc.LeaseServiceServicer):
    @unary_call("GrantLease")
    async def GrantLease(self, request: Any, context: Context) -> Any:
        raise _not_served("GrantLease")

    @streaming_call("KeepAlive")
    async def KeepAlive(self, request: Any, context: Context) -> AsyncIterator[Any]:
        raise _not_served("KeepAlive")
        yield  # pragma: no cover - makes this an async generator

    @unary_call("RefreshLease")
    async def RefreshLease(self, request: Any, context: Context) -> Any:
        raise _not_served("RefreshLease")

    @unary_call("RevokeLease")
    async def RevokeLease(self, request: Any, context: Context) -> Any:
        raise _not_served("RevokeLease")

    @unary_call("GetLease")
    async def GetLease(self, request: Any, context: Context) -> Any:
        raise _not_served("GetLease")
