"""Who holds what, since when, and who waits: ListLocks, ListLeases and their CLI verbs.

Against the shared server of each backend, each test under its own prefix (and holder): the
listings' exact contents, pages that neither skip nor repeat a lock while others acquire, page
tokens bound to their query, and the `locks`, `lock-info` and `leases` verbs' output.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess
from tests.e2e.support import expect_failure
from tests.http.support import assert_problem, gateway_client_fixture

INVALID = grpc.StatusCode.INVALID_ARGUMENT
http = gateway_client_fixture()


def acquire(locks: lock_pb2_grpc.LockServiceStub, name: str, holder: str, **kwargs: object) -> lock_pb2.Lock:
    request = lock_pb2.AcquireLockRequest(name=name, holder=holder, **kwargs)  # type: ignore[arg-type]
    lock: lock_pb2.Lock = locks.AcquireLock(request, timeout=30)
    return lock


def list_all(locks: lock_pb2_grpc.LockServiceStub, prefix: str, **kwargs: object) -> list[lock_pb2.Lock]:
    found: list[lock_pb2.Lock] = []
    token = ""
    while True:
        page = locks.ListLocks(
            lock_pb2.ListLocksRequest(prefix=prefix, page_token=token, **kwargs),  # type: ignore[arg-type]
            timeout=10,
        )
        found.extend(page.locks)
        token = page.next_page_token
        if not token:
            return found


def wait_for_waiters(locks: lock_pb2_grpc.LockServiceStub, name: str, count: int) -> None:
    """Until `count` callers queue for `name` (the queued AcquireLock runs on another thread)."""
    deadline = time.monotonic() + 20
    while locks.GetLock(lock_pb2.GetLockRequest(name=name), timeout=10).waiters != count:
        assert time.monotonic() < deadline, f"{name} never had {count} waiter(s)"
        time.sleep(0.02)


@pytest.fixture
def queued(locks: lock_pb2_grpc.LockServiceStub, prefix: str) -> Iterator[tuple[lock_pb2.Lock, str]]:
    """`prefix/held`, held by `job-1`, with `job-2` queued for it; the release serves job-2."""
    name = f"{prefix}/held"
    held = acquire(locks, name, "job-1", ttl_seconds=60)
    outcome: list[lock_pb2.Lock] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(
            acquire(locks, name, "job-2", ttl_seconds=60, wait_timeout=Duration(seconds=25))
        )
    )
    waiter.start()
    wait_for_waiters(locks, name, 1)
    yield held, name
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=held.token), timeout=10)
    waiter.join(timeout=30)
    assert outcome and outcome[0].holder == "job-2"
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=name, token=outcome[0].token), timeout=10)


def test_list_locks_shows_holder_token_expiry_and_queue(
    locks: lock_pb2_grpc.LockServiceStub,
    leases: lease_pb2_grpc.LeaseServiceStub,
    prefix: str,
    queued: tuple[lock_pb2.Lock, str],
) -> None:
    held, name = queued
    free = acquire(locks, f"{prefix}/free", "job-3", ttl_seconds=60)
    locks.ReleaseLock(lock_pb2.ReleaseLockRequest(name=free.name, token=free.token), timeout=10)
    lease = leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=held.lease_id), timeout=10)

    listed = list_all(locks, f"{prefix}/", include_queue=True)

    assert [lock.name for lock in listed] == [f"{prefix}/free", name]
    free_listed, held_listed = listed
    assert (free_listed.held, free_listed.holder, free_listed.token, free_listed.waiters) == (
        False,
        "",
        free.token,
        0,
    )
    assert held_listed.held and not held_listed.detail_withheld
    assert (held_listed.holder, held_listed.lease_id, held_listed.token) == (
        "job-1",
        held.lease_id,
        held.token,
    )
    assert held_listed.acquire_time == held.acquire_time
    assert held_listed.expire_time == lease.expire_time
    assert held_listed.waiters == 1
    assert [waiter.holder for waiter in held_listed.queue] == ["job-2"]
    assert held_listed.queue[0].deadline.ToSeconds() > time.time()
    # Without include_queue the count stays and the queue is not listed.
    plain = list_all(locks, name)
    assert [(lock.name, lock.waiters, len(lock.queue)) for lock in plain] == [(name, 1, 0)]


def test_pages_neither_skip_nor_repeat_locks_acquired_meanwhile(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    before = [f"{prefix}/p/{i:03d}" for i in range(0, 40, 2)]
    for name in before:
        acquire(locks, name, "seed", ttl_seconds=60)
    stop = threading.Event()
    acquired: list[str] = []

    def acquire_meanwhile() -> None:
        for i in range(1, 40, 2):
            if stop.is_set():
                return
            name = f"{prefix}/p/{i:03d}"
            acquire(locks, name, "late", ttl_seconds=60)
            acquired.append(name)

    writer = threading.Thread(target=acquire_meanwhile)
    writer.start()
    seen: list[str] = []
    token = ""
    pages = 0
    try:
        while True:
            page = locks.ListLocks(
                lock_pb2.ListLocksRequest(prefix=f"{prefix}/p/", page_size=3, page_token=token), timeout=10
            )
            assert len(page.locks) <= 3
            seen.extend(lock.name for lock in page.locks)
            pages += 1
            token = page.next_page_token
            if not token:
                break
    finally:
        stop.set()
        writer.join(timeout=60)
    assert seen == sorted(set(seen)), "a lock was listed twice or out of order"
    assert set(before) <= set(seen), "a lock held before the listing began was skipped"
    assert set(seen) <= set(before) | set(acquired)
    assert pages >= len(before) // 3
    # Once the writer is done, a fresh listing has every lock exactly once.
    assert [lock.name for lock in list_all(locks, f"{prefix}/p/", page_size=7)] == sorted(before + acquired)


def test_page_tokens_are_bound_to_their_query(locks: lock_pb2_grpc.LockServiceStub, prefix: str) -> None:
    for i in range(3):
        acquire(locks, f"{prefix}/t/{i}", "seed", ttl_seconds=60)
    page = locks.ListLocks(lock_pb2.ListLocksRequest(prefix=f"{prefix}/t/", page_size=1), timeout=10)
    assert [lock.name for lock in page.locks] == [f"{prefix}/t/0"]
    token = page.next_page_token
    for request in (
        lock_pb2.ListLocksRequest(prefix=f"{prefix}/", page_token=token),
        lock_pb2.ListLocksRequest(prefix=f"{prefix}/t/", page_token=token, include_queue=True),
        lock_pb2.ListLocksRequest(
            prefix=f"{prefix}/t/", page_token=token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        ),
    ):
        expect_failure(locks.ListLocks, request, INVALID, "INVALID_PAGE_TOKEN")
    rest = locks.ListLocks(
        lock_pb2.ListLocksRequest(prefix=f"{prefix}/t/", page_size=1, page_token=token), timeout=10
    )
    assert [lock.name for lock in rest.locks] == [f"{prefix}/t/1"]


def test_list_leases_shows_ttl_expiry_and_what_each_holds(
    locks: lock_pb2_grpc.LockServiceStub,
    leases: lease_pb2_grpc.LeaseServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    prefix: str,
) -> None:
    holder = f"holder-{prefix}"
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=60, holder=holder), timeout=10)
    other = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=30, holder=holder), timeout=10)
    acquire(locks, f"{prefix}/l/b", holder, lease_id=lease.lease_id)
    acquire(locks, f"{prefix}/l/a", holder, lease_id=lease.lease_id)
    resources.CreateResource(
        resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v", lease_id=lease.lease_id), timeout=10
    )
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=other.lease_id), timeout=10)

    page = leases.ListLeases(lease_pb2.ListLeasesRequest(holder=holder), timeout=10)

    assert page.next_page_token == ""
    assert [listed.lease_id for listed in page.leases] == [lease.lease_id]  # the revoked one is gone
    (listed,) = page.leases
    assert (listed.holder, listed.ttl_seconds) == (holder, 60)
    assert listed.grant_time == lease.grant_time
    assert listed.expire_time == lease.expire_time
    assert 0 < listed.remaining_ms <= 60_000
    assert list(listed.lock_names) == [f"{prefix}/l/a", f"{prefix}/l/b"]
    assert list(listed.resource_keys) == [f"{prefix}/k"]
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), timeout=10)
    assert not leases.ListLeases(lease_pb2.ListLeasesRequest(holder=holder), timeout=10).leases


def test_list_leases_pages_by_lease_id(leases: lease_pb2_grpc.LeaseServiceStub, prefix: str) -> None:
    holder = f"pager-{prefix}"
    granted = sorted(
        leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=60, holder=holder), timeout=10).lease_id
        for _ in range(5)
    )
    seen: list[str] = []
    token = ""
    while True:
        page = leases.ListLeases(
            lease_pb2.ListLeasesRequest(holder=holder, page_size=2, page_token=token), timeout=10
        )
        seen.extend(lease.lease_id for lease in page.leases)
        token = page.next_page_token
        if not token:
            break
    assert seen == granted
    first = leases.ListLeases(lease_pb2.ListLeasesRequest(holder=holder, page_size=2), timeout=10)
    expect_failure(
        leases.ListLeases,
        lease_pb2.ListLeasesRequest(holder="someone-else", page_token=first.next_page_token),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )


# The CLI verbs.


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKSERVICE, *args, "--target", server.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_locks_and_lock_info_verbs_say_who_holds_what_and_who_waits(
    server: ServerProcess,
    locks: lock_pb2_grpc.LockServiceStub,
    leases: lease_pb2_grpc.LeaseServiceStub,
    prefix: str,
    queued: tuple[lock_pb2.Lock, str],
) -> None:
    held, name = queued
    expire = leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=held.lease_id), timeout=10).expire_time
    line = (
        f"{name} held by job-1 token {held.token} lease {held.lease_id} "
        f"since {held.acquire_time.ToJsonString()} until {expire.ToJsonString()}; 1 waiting"
    )

    listed = cli(server, "locks", f"{prefix}/")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, line + "\n", "")

    with_queue = cli(server, "locks", f"{prefix}/", "--queue")
    assert with_queue.returncode == 0
    first, second = with_queue.stdout.splitlines()
    assert first == line
    assert second.startswith("  1. job-2 waits until ")

    info = cli(server, "lock-info", name)
    assert info.returncode == 0
    assert info.stdout.splitlines()[0] == line
    assert info.stdout.splitlines()[1].startswith("  1. job-2 waits until ")

    as_json = cli(server, "locks", f"{prefix}/", "--json")
    assert as_json.returncode == 0
    (record,) = [json.loads(text) for text in as_json.stdout.splitlines()]
    assert (record["name"], record["holder"], record["token"], record["waiters"]) == (
        name,
        "job-1",
        held.token,
        1,
    )

    missing = cli(server, "lock-info", f"{prefix}/never")
    assert missing.returncode == 4
    assert missing.stdout == ""
    assert missing.stderr.startswith("lockservice: error: LOCK_NOT_FOUND")


def test_leases_verb_lists_a_holders_leases(
    server: ServerProcess, leases: lease_pb2_grpc.LeaseServiceStub, prefix: str
) -> None:
    holder = f"cli-{prefix}"
    lease = leases.GrantLease(lease_pb2.GrantLeaseRequest(ttl_seconds=60, holder=holder), timeout=10)
    result = cli(server, "leases", "--holder", holder)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(
        f"{lease.lease_id} holder {holder} ttl 60s expires {lease.expire_time.ToJsonString()} ("
    )
    assert line.endswith("s left) locks [] keys []")
    as_json = cli(server, "leases", "--holder", holder, "--json")
    assert [json.loads(text)["lease_id"] for text in as_json.stdout.splitlines()] == [lease.lease_id]
    leases.RevokeLease(lease_pb2.RevokeLeaseRequest(lease_id=lease.lease_id), timeout=10)


# The HTTP routes.


def test_get_v1_locks_and_v1_leases_list_as_json(
    http: httpx.Client,
    leases: lease_pb2_grpc.LeaseServiceStub,
    prefix: str,
    queued: tuple[lock_pb2.Lock, str],
) -> None:
    held, name = queued
    lease = leases.GetLease(lease_pb2.GetLeaseRequest(lease_id=held.lease_id), timeout=10)

    reply = http.get("/v1/locks", params={"prefix": f"{prefix}/", "include_queue": "true"})

    assert reply.status_code == 200
    body = reply.json()
    assert body["next_page_token"] == ""
    (lock,) = body["locks"]
    (waiter,) = lock.pop("queue")
    assert waiter["holder"] == "job-2"
    assert lock == {
        "name": name,
        "held": True,
        "holder": "job-1",
        "lease_id": held.lease_id,
        "token": held.token,
        "acquire_time": held.acquire_time.ToJsonString(),
        "expire_time": lease.expire_time.ToJsonString(),
        "waiters": 1,
        "lock_delay_seconds": 0.0,
        "available_time": None,
        "detail_withheld": False,
    }
    paged = http.get("/v1/locks", params={"prefix": f"{prefix}/", "page_size": "1"}).json()
    assert [listed["name"] for listed in paged["locks"]] == [name]

    holder = lease.holder
    leases_reply = http.get("/v1/leases", params={"holder": holder})
    assert leases_reply.status_code == 200
    assert [listed["lease_id"] for listed in leases_reply.json()["leases"]] == [held.lease_id]

    bad = http.get("/v1/locks", params={"prefix": f"{prefix}/", "page_token": "not-a-token"})
    assert_problem(bad, 400, "INVALID_PAGE_TOKEN", code="INVALID_ARGUMENT")
