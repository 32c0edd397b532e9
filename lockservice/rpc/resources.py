"""ResourceService: translate the request, call the core, translate the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.rpc import convert
from lockservice.rpc.auth import caller, visibility
from lockservice.rpc.calls import streaming_call, unary_call
from lockservice.v1 import resource_pb2, resource_pb2_grpc

__all__ = ["ResourceServicer"]

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ResourceServicer(resource_pb2_grpc.ResourceServiceServicer):
    def __init__(self, resources: Resources, watches: Watches) -> None:
        self._resources = resources
        self._watches = watches

    @unary_call("CreateResource")
    async def CreateResource(self, request: resource_pb2.CreateResourceRequest, context: Context) -> Any:
        return convert.resource_to_proto(
            await self._resources.create(convert.create_request(request, caller()))
        )

    @unary_call("GetResource")
    async def GetResource(self, request: resource_pb2.GetResourceRequest, context: Context) -> Any:
        return convert.resource_to_proto(await self._resources.get(convert.get_request(request)))

    @unary_call("UpdateResource")
    async def UpdateResource(self, request: resource_pb2.UpdateResourceRequest, context: Context) -> Any:
        return convert.resource_to_proto(
            await self._resources.update(convert.update_request(request, caller()))
        )

    @unary_call("DeleteResource")
    async def DeleteResource(self, request: resource_pb2.DeleteResourceRequest, context: Context) -> Any:
        result = await self._resources.delete(convert.delete_request(request, caller()))
        return convert.delete_response(visibility().deleted(result))

    @unary_call("ListResources")
    async def ListResources(self, request: resource_pb2.ListResourcesRequest, context: Context) -> Any:
        page = await self._resources.list(convert.list_request(request))
        return resource_pb2.ListResourcesResponse(
            resources=[convert.resource_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    @unary_call("ListResourceVersions")
    async def ListResourceVersions(
        self, request: resource_pb2.ListResourceVersionsRequest, context: Context
    ) -> Any:
        page = await self._resources.list_versions(convert.list_versions_request(request))
        return resource_pb2.ListResourceVersionsResponse(
            versions=[convert.resource_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    @unary_call("CompareAndSet")
    async def CompareAndSet(self, request: resource_pb2.CompareAndSetRequest, context: Context) -> Any:
        resource = await self._resources.compare_and_set(convert.compare_and_set_request(request, caller()))
        return convert.resource_to_proto(resource)

    @unary_call("Transact")
    async def Transact(self, request: resource_pb2.TransactRequest, context: Context) -> Any:
        result = await self._resources.transact(convert.transact_request(request, caller()))
        return convert.transact_response(visibility().transacted(result))

    @streaming_call("Watch")
    async def Watch(self, request: resource_pb2.WatchRequest, context: Context) -> AsyncIterator[Any]:
        async for batch in self._watches.watch(convert.watch_request(request)):
            yield convert.watch_response(batch)
