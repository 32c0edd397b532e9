"""LeaseService: translate the request, call the core, translate the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from lockservice.core import requests as rq
from lockservice.core.leases import Leases
from lockservice.rpc import convert
from lockservice.rpc.auth import caller
from lockservice.rpc.calls import streaming_call, unary_call
from lockservice.v1 import lease_pb2, lease_pb2_grpc

__all__ = ["LeaseServicer"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class LeaseServicer(lease_pb2_grpc.LeaseServiceServicer):
    def __init__(self, leases: Leases) -> None:
        self._leases = leases

    @unary_call("GrantLease")
    async def GrantLease(self, request: lease_pb2.GrantLeaseRequest, context: Context) -> Any:
        return convert.lease_to_proto(await self._leases.grant(convert.grant_request(request, caller())))

    @streaming_call("KeepAlive")
    async def KeepAlive(
        self, request: AsyncIterator[lease_pb2.KeepAliveRequest], context: Context
    ) -> AsyncIterator[Any]:
        async for message in request:
            lease = await self._leases.refresh(rq.RefreshLease(lease_id=message.lease_id, owner=caller()))
            yield convert.keepalive_response(lease)

    @unary_call("RefreshLease")
    async def RefreshLease(self, request: lease_pb2.RefreshLeaseRequest, context: Context) -> Any:
        lease = await self._leases.refresh(
            rq.RefreshLease(lease_id=request.lease_id, request_id=request.request_id, owner=caller())
        )
        return convert.lease_to_proto(lease)

    @unary_call("RevokeLease")
    async def RevokeLease(self, request: lease_pb2.RevokeLeaseRequest, context: Context) -> Any:
        ended = await self._leases.revoke(
            rq.RevokeLease(lease_id=request.lease_id, request_id=request.request_id, owner=caller())
        )
        return convert.lease_ended_response(ended)

    @unary_call("GetLease")
    async def GetLease(self, request: lease_pb2.GetLeaseRequest, context: Context) -> Any:
        return convert.lease_view_to_proto(await self._leases.get(request.lease_id, caller()))

    @unary_call("ListLeases")
    async def ListLeases(self, request: lease_pb2.ListLeasesRequest, context: Context) -> Any:
        page = await self._leases.list(convert.list_leases_request(request, caller()))
        return convert.list_leases_response(page)
