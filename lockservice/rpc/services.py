"""The gRPC services lockservice serves, added to a server: its three APIs, health and
reflection. Which core objects back them is the startup's choice (`lockservice.server`)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from lockservice.core.leases import Leases
from lockservice.core.locks import Locks
from lockservice.core.resources import Resources
from lockservice.core.watch import Watches
from lockservice.rpc.decoding import add_servicer
from lockservice.rpc.leases import LeaseServicer
from lockservice.rpc.locks import LockServicer
from lockservice.rpc.resources import ResourceServicer
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc

__all__ = ["SERVICE_NAMES", "add_services"]

SERVICE_NAMES = (
    resource_pb2.DESCRIPTOR.services_by_name["ResourceService"].full_name,
    lease_pb2.DESCRIPTOR.services_by_name["LeaseService"].full_name,
    lock_pb2.DESCRIPTOR.services_by_name["LockService"].full_name,
)


def add_services(
    server: grpc.aio.Server,
    resources: Resources,
    watches: Watches,
    leases: Leases,
    locks: Locks,
    health_servicer: health.aio.HealthServicer,
) -> None:
    """Adds the three APIs (in the call wrapper: auth, limits, logs, metrics), and health and
    reflection (outside it) to `server`, before it starts."""
    add_servicer(
        resource_pb2_grpc.add_ResourceServiceServicer_to_server, ResourceServicer(resources, watches), server
    )
    add_servicer(lease_pb2_grpc.add_LeaseServiceServicer_to_server, LeaseServicer(leases), server)
    add_servicer(lock_pb2_grpc.add_LockServiceServicer_to_server, LockServicer(locks), server)
    add_servicer(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server, foreign=True)
    add_servicer(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            )
        ),
        server,
        foreign=True,
    )
