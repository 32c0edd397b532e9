"""ListLocks and ListLeases show a caller only what its rights let it see.

A lock under a prefix the caller may not read is not listed at all; a lock it may read but not
take is listed without its holder, lease, token or queued holders (`detail_withheld`); a caller
with both rights sees everything. ListLeases lists a caller's own leases only. One server per
backend with bearer tokens and the policy below, shared by the module.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.ops_support import PolicyServers, bearer

TOKENS = {name: secrets.token_hex(24) for name in ("admin", "viewer", "locker")}
POLICY = """
[[grant]]
identity = "admin"
prefix = ""
rights = ["read", "write", "lock"]

[[grant]]
identity = "viewer"
prefix = "a/"
rights = ["read"]

[[grant]]
identity = "locker"
prefix = "a/"
rights = ["read", "lock"]
"""

_servers = PolicyServers("listing-rights", POLICY, TOKENS)


@pytest.fixture(scope="module", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    _servers.stop()


@pytest.fixture
def policy_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A server per backend with bearer tokens and the policy above, shared by the module."""
    return _servers.get(backend, tmp_path_factory)


@pytest.fixture
def channel(policy_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(policy_server.address) as ch:
        yield ch


def as_(identity: str) -> tuple[tuple[str, str]]:
    return bearer(TOKENS[identity])


def listed(locks: lock_pb2_grpc.LockServiceStub, identity: str, prefix: str) -> list[lock_pb2.Lock]:
    found: list[lock_pb2.Lock] = []
    token = ""
    while True:
        page = locks.ListLocks(
            lock_pb2.ListLocksRequest(prefix=prefix, page_size=1, page_token=token, include_queue=True),
            metadata=as_(identity),
            timeout=10,
        )
        found.extend(page.locks)
        token = page.next_page_token
        if not token:
            return found


@pytest.fixture
def held_by_admin(channel: grpc.Channel, prefix: str) -> Iterator[dict[str, lock_pb2.Lock]]:
    """`a/P/1` (with `admin-2` queued), `a/P/2` and `b/P/1`, held by `admin-1`."""
    locks = lock_pb2_grpc.LockServiceStub(channel)
    held = {
        name: locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=60, holder="admin-1"),
            metadata=as_("admin"),
            timeout=10,
        )
        for name in (f"a/{prefix}/1", f"a/{prefix}/2", f"b/{prefix}/1")
    }
    queued = f"a/{prefix}/1"
    waiter = threading.Thread(
        target=lambda: locks.AcquireLock(
            lock_pb2.AcquireLockRequest(
                name=queued, ttl_seconds=60, holder="admin-2", wait_timeout=Duration(seconds=25)
            ),
            metadata=as_("admin"),
            timeout=30,
        )
    )
    waiter.start()
    deadline = time.monotonic() + 20
    while locks.GetLock(lock_pb2.GetLockRequest(name=queued), metadata=as_("admin"), timeout=10).waiters != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield held
    for name, lock in held.items():
        locks.ReleaseLock(
            lock_pb2.ReleaseLockRequest(name=name, token=lock.token), metadata=as_("admin"), timeout=10
        )
    waiter.join(timeout=30)


def test_a_caller_with_every_right_sees_every_lock_in_full(
    channel: grpc.Channel, prefix: str, held_by_admin: dict[str, lock_pb2.Lock]
) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    seen = listed(locks, "admin", "")
    mine = [lock for lock in seen if prefix in lock.name]
    assert [lock.name for lock in mine] == [f"a/{prefix}/1", f"a/{prefix}/2", f"b/{prefix}/1"]
    for lock in mine:
        original = held_by_admin[lock.name]
        assert (lock.holder, lock.lease_id, lock.token, lock.detail_withheld) == (
            "admin-1",
            original.lease_id,
            original.token,
            False,
        )
    assert [waiter.holder for waiter in mine[0].queue] == ["admin-2"]


def test_a_caller_without_read_sees_nothing_and_without_lock_sees_no_holder(
    channel: grpc.Channel, prefix: str, held_by_admin: dict[str, lock_pb2.Lock]
) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    for prefix_asked in ("", "b/", f"b/{prefix}/"):
        assert [lock.name for lock in listed(locks, "viewer", prefix_asked) if prefix in lock.name] == (
            [f"a/{prefix}/1", f"a/{prefix}/2"] if prefix_asked == "" else []
        )
    first, second = listed(locks, "viewer", f"a/{prefix}/")
    original = held_by_admin[first.name]
    assert first.held and first.detail_withheld
    assert (first.holder, first.lease_id, first.token) == ("", "", 0)
    assert first.acquire_time == original.acquire_time
    assert first.expire_time == original.expire_time
    assert first.waiters == 1
    assert [waiter.holder for waiter in first.queue] == [""]
    assert first.queue[0].deadline.seconds > 0
    assert (second.holder, second.token, second.detail_withheld, second.waiters) == ("", 0, True, 0)


def test_a_caller_with_read_and_lock_sees_the_holder_of_what_it_may_read(
    channel: grpc.Channel, prefix: str, held_by_admin: dict[str, lock_pb2.Lock]
) -> None:
    locks = lock_pb2_grpc.LockServiceStub(channel)
    seen = [lock for lock in listed(locks, "locker", "") if prefix in lock.name]
    assert [(lock.name, lock.holder, lock.token, lock.detail_withheld) for lock in seen] == [
        (name, "admin-1", held_by_admin[name].token, False) for name in (f"a/{prefix}/1", f"a/{prefix}/2")
    ]
    assert [waiter.holder for waiter in seen[0].queue] == ["admin-2"]


def test_list_leases_shows_a_caller_its_own_leases_only(channel: grpc.Channel, prefix: str) -> None:
    leases = lease_pb2_grpc.LeaseServiceStub(channel)
    holder = f"h-{prefix}"
    mine = leases.GrantLease(
        lease_pb2.GrantLeaseRequest(ttl_seconds=60, holder=holder), metadata=as_("locker"), timeout=10
    )
    theirs = leases.GrantLease(
        lease_pb2.GrantLeaseRequest(ttl_seconds=60, holder=holder), metadata=as_("admin"), timeout=10
    )
    for identity, lease in (("locker", mine), ("admin", theirs)):
        page = leases.ListLeases(
            lease_pb2.ListLeasesRequest(holder=holder), metadata=as_(identity), timeout=10
        )
        assert [listed.lease_id for listed in page.leases] == [lease.lease_id]
    assert not leases.ListLeases(
        lease_pb2.ListLeasesRequest(holder=holder), metadata=as_("viewer"), timeout=10
    ).leases
    for identity, lease in (("locker", mine), ("admin", theirs)):
        leases.RevokeLease(
            lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), metadata=as_(identity), timeout=10
        )
