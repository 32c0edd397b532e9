"""LockService: translate the request, call the core, translate the answer."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from lockservice.core.locks import Locks
from lockservice.rpc import convert
from lockservice.rpc.auth import caller, visibility
from lockservice.rpc.calls import unary_call
from lockservice.v1 import lock_pb2, lock_pb2_grpc

__all__ = ["LockServicer"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class LockServicer(lock_pb2_grpc.LockServiceServicer):
    def __init__(self, locks: Locks) -> None:
        self._locks = locks

    @unary_call("AcquireLock")
    async def AcquireLock(self, request: lock_pb2.AcquireLockRequest, context: Context) -> Any:
        view = await self._locks.acquire(convert.acquire_request(request, caller()))
        return convert.lock_to_proto(visibility().acquired(view))

    @unary_call("ReleaseLock")
    async def ReleaseLock(self, request: lock_pb2.ReleaseLockRequest, context: Context) -> Any:
        view = await self._locks.release(convert.release_request(request, caller()))
        return lock_pb2.ReleaseLockResponse(
            lock=convert.lock_to_proto(visibility().released(view, request.token))
        )

    @unary_call("GetLock")
    async def GetLock(self, request: lock_pb2.GetLockRequest, context: Context) -> Any:
        return convert.lock_to_proto(await self._locks.get(request.name))

    @unary_call("ListLocks")
    async def ListLocks(self, request: lock_pb2.ListLocksRequest, context: Context) -> Any:
        page = await self._locks.list(convert.list_locks_request(request), visibility())
        return convert.list_locks_response(page)
