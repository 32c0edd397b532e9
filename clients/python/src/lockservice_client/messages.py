"""The protobuf messages the client sends and returns (package `lockservice.v1`).

Generated from `protos/lockservice/v1` into `lockservice_client._proto`; these names are the
public way to reach them, for example to build `Compare` and `Operation` for `transact()`.
"""

from __future__ import annotations

from lockservice_client._proto import errors_pb2, lease_pb2, lock_pb2, resource_pb2

__all__ = [
    "Compare",
    "ConflictDetail",
    "DeleteOperation",
    "DeleteResourceResponse",
    "Fence",
    "Lease",
    "Lock",
    "Operation",
    "PutOperation",
    "ReleaseLockResponse",
    "Resource",
    "RevokeLeaseResponse",
    "TransactResponse",
    "WatchEvent",
    "errors_pb2",
    "lease_pb2",
    "lock_pb2",
    "resource_pb2",
]

Resource = resource_pb2.Resource
DeleteResourceResponse = resource_pb2.DeleteResourceResponse
Compare = resource_pb2.Compare
Operation = resource_pb2.Operation
PutOperation = resource_pb2.PutOperation
DeleteOperation = resource_pb2.DeleteOperation
TransactResponse = resource_pb2.TransactResponse
WatchEvent = resource_pb2.WatchEvent
Lease = lease_pb2.Lease
RevokeLeaseResponse = lease_pb2.RevokeLeaseResponse
Lock = lock_pb2.Lock
Fence = lock_pb2.Fence
ReleaseLockResponse = lock_pb2.ReleaseLockResponse
ConflictDetail = errors_pb2.ConflictDetail
