"""Every RPC has a row in the permissions table, and the table reads the right keys."""

from __future__ import annotations

from lockservice.core.access import Right
from lockservice.rpc.permissions import KEYS_BY_METHOD, required_access
from lockservice.v1 import lease_pb2, lock_pb2, resource_pb2


def test_every_method_of_every_service_has_a_row() -> None:
    methods = {
        method.name
        for module in (resource_pb2, lease_pb2, lock_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(KEYS_BY_METHOD) == methods


def test_keys_and_rights_read_from_requests() -> None:
    transact = resource_pb2.TransactRequest(
        compares=[resource_pb2.Compare(key="a", absent=True)],
        operations=[
            resource_pb2.Operation(put=resource_pb2.PutOperation(key="b")),
            resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key="c")),
        ],
    )
    assert list(required_access("Transact", transact)) == [
        (Right.READ, "a", False),
        (Right.WRITE, "b", False),
        (Right.WRITE, "c", False),
    ]
    watch = resource_pb2.WatchRequest(key="orders/", prefix=True)
    assert list(required_access("Watch", watch)) == [(Right.READ, "orders/", True)]
    listing = resource_pb2.ListResourcesRequest(prefix="orders/")
    assert list(required_access("ListResources", listing)) == [(Right.READ, "orders/", True)]
    release = lock_pb2.ReleaseLockRequest(name="jobs/nightly", token=3)
    assert list(required_access("ReleaseLock", release)) == [(Right.LOCK, "jobs/nightly", False)]
    assert list(required_access("GetLock", lock_pb2.GetLockRequest(name="n"))) == [(Right.READ, "n", False)]
    assert list(required_access("GrantLease", lease_pb2.GrantLeaseRequest(ttl_seconds=5))) == []


def test_a_fence_needs_the_lock_right_on_its_lock() -> None:
    fence = lock_pb2.Fence(lock_name="locks/nightly", token=3)
    update = resource_pb2.UpdateResourceRequest(key="orders/1", fence=fence)
    assert list(required_access("UpdateResource", update)) == [
        (Right.WRITE, "orders/1", False),
        (Right.LOCK, "locks/nightly", False),
    ]
    delete = resource_pb2.DeleteResourceRequest(key="orders/1", fence=fence)
    assert list(required_access("DeleteResource", delete))[1] == (Right.LOCK, "locks/nightly", False)
    cas = resource_pb2.CompareAndSetRequest(key="orders/1", expect_absent=True, fence=fence)
    assert list(required_access("CompareAndSet", cas))[1] == (Right.LOCK, "locks/nightly", False)
    transact = resource_pb2.TransactRequest(
        operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key="orders/1"))], fence=fence
    )
    assert list(required_access("Transact", transact)) == [
        (Right.WRITE, "orders/1", False),
        (Right.LOCK, "locks/nightly", False),
    ]
    unfenced = resource_pb2.UpdateResourceRequest(key="orders/1")
    assert list(required_access("UpdateResource", unfenced)) == [(Right.WRITE, "orders/1", False)]
