"""The adapter's gRPC side: one grpc.aio channel to lockservice and its stubs.

The channel is made on first use, inside the event loop that serves requests (grpc.aio objects
belong to the loop that made them), so an app can be built before any loop runs, and mounted
apps (whose lifespan Starlette never runs) work without setup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2_grpc

from lockservice.v1 import lease_pb2_grpc, lock_pb2_grpc, resource_pb2_grpc

if TYPE_CHECKING:
    from lockservice.v1.lease_pb2_grpc import LeaseServiceAsyncStub
    from lockservice.v1.lock_pb2_grpc import LockServiceAsyncStub
    from lockservice.v1.resource_pb2_grpc import ResourceServiceAsyncStub

__all__ = ["Backend"]


class Backend:
    """Stubs over a channel to `target`, or over a `channel` the caller owns (and closes)."""

    def __init__(self, target: str | None = None, *, channel: grpc.aio.Channel | None = None) -> None:
        if (target is None) == (channel is None):
            raise ValueError("give exactly one of target and channel")
        self._target = target
        self._channel = channel
        self._owned = channel is None
        self._resources: ResourceServiceAsyncStub | None = None
        self._leases: LeaseServiceAsyncStub | None = None
        self._locks: LockServiceAsyncStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            assert self._target is not None
            self._channel = grpc.aio.insecure_channel(self._target)
        return self._channel

    @property
    def resources(self) -> ResourceServiceAsyncStub:
        if self._resources is None:
            self._resources = resource_pb2_grpc.ResourceServiceStub(self.channel())
        return self._resources

    @property
    def leases(self) -> LeaseServiceAsyncStub:
        if self._leases is None:
            self._leases = lease_pb2_grpc.LeaseServiceStub(self.channel())
        return self._leases

    @property
    def locks(self) -> LockServiceAsyncStub:
        if self._locks is None:
            self._locks = lock_pb2_grpc.LockServiceStub(self.channel())
        return self._locks

    @property
    def health(self) -> health_pb2_grpc.HealthStub:
        if self._health is None:
            self._health = health_pb2_grpc.HealthStub(self.channel())
        return self._health

    async def aclose(self) -> None:
        """Closes the channel if this backend made it; a caller's channel is left open."""
        if self._owned and self._channel is not None:
            channel, self._channel = self._channel, None
            self._resources = self._leases = self._locks = self._health = None
            await channel.close()
