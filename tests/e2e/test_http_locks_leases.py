"""Leases, locks and fenced writes as JSON over HTTP, against a real server."""

from __future__ import annotations

import threading
import time

import grpc
import httpx

from lockservice.v1 import lock_pb2, lock_pb2_grpc
from tests.e2e.support import expect_failure
from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def _waiters(http: httpx.Client, name: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while http.get(f"/v1/locks/{name}").json()["waiters"] != count:
        assert time.monotonic() < deadline, f"{name} never had {count} waiters"
        time.sleep(0.02)


def test_grant_get_refresh_and_revoke_a_lease(http: httpx.Client, prefix: str) -> None:
    granted = http.post("/v1/leases", json={"ttl_seconds": 30, "holder": f"{prefix}-worker"})
    assert granted.status_code == 201
    lease = granted.json()
    assert granted.headers["location"] == f"/v1/leases/{lease['lease_id']}"
    assert (lease["holder"], lease["ttl_seconds"], lease["lock_names"], lease["resource_keys"]) == (
        f"{prefix}-worker",
        30,
        [],
        [],
    )
    assert 29_000 <= lease["remaining_ms"] <= 30_000
    assert lease["grant_time"] < lease["expire_time"]

    key = f"{prefix}/session"
    attached = http.put(
        f"/v1/resources/{key}", content=b"s", headers={"Lockservice-Lease-Id": lease["lease_id"]}
    )
    assert attached.json()["lease_id"] == lease["lease_id"]
    assert http.get(f"/v1/resources/{key}").headers["lockservice-lease-id"] == lease["lease_id"]
    read = http.get(f"/v1/leases/{lease['lease_id']}").json()
    assert read["resource_keys"] == [key]

    refreshed = http.post(f"/v1/leases/{lease['lease_id']}:refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["expire_time"] >= lease["expire_time"]

    revoked = http.post(f"/v1/leases/{lease['lease_id']}:revoke", json={"request_id": f"{prefix}-revoke"})
    assert revoked.status_code == 200
    assert revoked.json()["deleted_keys"] == [key]
    assert revoked.json()["released_locks"] == []
    assert_problem(http.get(f"/v1/resources/{key}"), 404, "RESOURCE_NOT_FOUND", code="NOT_FOUND")
    gone = http.get(f"/v1/leases/{lease['lease_id']}")
    assert_problem(gone, 404, "LEASE_NOT_FOUND", code="NOT_FOUND", instance=f"/v1/leases/{lease['lease_id']}")
    assert_problem(
        http.post(f"/v1/leases/{lease['lease_id']}:refresh"), 404, "LEASE_NOT_FOUND", code="NOT_FOUND"
    )
    bad_ttl = http.post("/v1/leases", json={"ttl_seconds": 0})
    assert_problem(bad_ttl, 400, "INVALID_TTL", code="INVALID_ARGUMENT")


def test_a_held_lock_is_409_lock_held_with_holder_token_and_expiry(http: httpx.Client, prefix: str) -> None:
    name = f"{prefix}/jobs/nightly"
    acquired = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "worker-a"})
    assert acquired.status_code == 200
    lock = acquired.json()
    assert (lock["name"], lock["held"], lock["holder"], lock["waiters"]) == (name, True, "worker-a", 0)
    assert lock["token"] > 0
    assert lock["lease_id"]

    busy = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "worker-b"})
    problem = assert_problem(busy, 409, "LOCK_HELD", code="ABORTED", instance=f"/v1/locks/{name}:acquire")
    conflict = problem["conflict"]
    assert (conflict["key"], conflict["holder"], conflict["current_token"], conflict["lease_id"]) == (
        name,
        "worker-a",
        lock["token"],
        lock["lease_id"],
    )
    assert conflict["expire_time"] == lock["expire_time"]
    assert "etag" not in busy.headers
    assert http.get(f"/v1/locks/{name}").json() == lock

    started = time.monotonic()
    timed_out = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "wait_timeout_seconds": 0.3})
    assert_problem(timed_out, 409, "LOCK_HELD", code="ABORTED")
    assert 0.3 <= time.monotonic() - started < 5


def test_release_with_a_stale_token_is_409_and_the_right_token_frees_the_lock(
    http: httpx.Client, prefix: str
) -> None:
    name = f"{prefix}/release"
    first = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "a"}).json()
    assert http.post(f"/v1/locks/{name}:release", json={"token": first["token"]}).status_code == 200
    second = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "b"}).json()
    assert second["token"] > first["token"]

    stale = http.post(f"/v1/locks/{name}:release", json={"token": first["token"]})
    problem = assert_problem(stale, 409, "LOCK_NOT_HELD", code="ABORTED")
    assert (problem["conflict"]["holder"], problem["conflict"]["current_token"]) == ("b", second["token"])

    released = http.post(
        f"/v1/locks/{name}:release", json={"token": second["token"], "request_id": f"{prefix}-r"}
    )
    assert released.status_code == 200
    assert (released.json()["lock"]["held"], released.json()["lock"]["token"]) == (False, second["token"])
    never = f"{prefix}/never"
    assert_problem(http.get(f"/v1/locks/{never}"), 404, "LOCK_NOT_FOUND", code="NOT_FOUND")
    assert_problem(
        http.post(f"/v1/locks/{never}:release", json={"token": 1}), 404, "LOCK_NOT_FOUND", code="NOT_FOUND"
    )


def test_a_waiter_gets_the_lock_when_the_holder_releases(http: httpx.Client, prefix: str) -> None:
    name = f"{prefix}/queue"
    held = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "first"}).json()
    answers: list[httpx.Response] = []

    def wait_for_the_lock() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=20) as waiter:
            answers.append(
                waiter.post(
                    f"/v1/locks/{name}:acquire",
                    json={"ttl_seconds": 30, "holder": "second", "wait_timeout_seconds": 15},
                )
            )

    thread = threading.Thread(target=wait_for_the_lock)
    thread.start()
    _waiters(http, name, 1)
    http.post(f"/v1/locks/{name}:release", json={"token": held["token"]})
    thread.join(timeout=20)
    assert [a.status_code for a in answers] == [200]
    taken = answers[0].json()
    assert (taken["holder"], taken["held"]) == ("second", True)
    assert taken["token"] > held["token"]


def test_a_waiting_client_that_disconnects_leaves_the_queue(http: httpx.Client, prefix: str) -> None:
    name = f"{prefix}/impatient"
    held = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "holder": "owner"}).json()
    with httpx.Client(base_url=str(http.base_url), timeout=0.5) as impatient:
        try:
            impatient.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30, "wait_timeout_seconds": 20})
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("the acquire must still be waiting")
    _waiters(http, name, 0)
    released = http.post(f"/v1/locks/{name}:release", json={"token": held["token"]}).json()
    assert released["lock"]["held"] is False


def test_a_write_fenced_with_a_stale_token_is_409_stale_fence(http: httpx.Client, prefix: str) -> None:
    name, path = f"{prefix}/fence", f"/v1/resources/{prefix}/fenced"
    first = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30}).json()
    fence = {"Lockservice-Fence-Lock": name, "Lockservice-Fence-Token": str(first["token"])}
    assert http.put(path, content=b"1", headers=fence).status_code == 201
    http.post(f"/v1/locks/{name}:release", json={"token": first["token"]})
    second = http.post(f"/v1/locks/{name}:acquire", json={"ttl_seconds": 30}).json()

    stale = http.put(path, content=b"2", headers=fence)
    problem = assert_problem(stale, 409, "STALE_FENCE", code="ABORTED", instance=path)
    assert problem["metadata"]["token"] == str(first["token"])
    assert_problem(http.delete(path, headers=fence), 409, "STALE_FENCE", code="ABORTED")
    cas = http.post(
        f"{path}:compareAndSet",
        json={"expected_version": 1, "value": "2", "fence": {"lock_name": name, "token": first["token"]}},
    )
    assert_problem(cas, 409, "STALE_FENCE", code="ABORTED")
    assert http.get(path).content == b"1"

    current = {"Lockservice-Fence-Lock": name, "Lockservice-Fence-Token": str(second["token"])}
    assert http.put(path, content=b"2", headers=current).status_code == 200
    half = http.put(path, content=b"3", headers={"Lockservice-Fence-Lock": name})
    assert_problem(half, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="Lockservice-Fence-Lock")


def test_lock_request_shape_errors_are_400(http: httpx.Client, prefix: str) -> None:
    path = f"/v1/locks/{prefix}/shape:acquire"
    both = http.post(path, json={"ttl_seconds": 5, "lease_id": "x"})
    assert_problem(both, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.ttl_seconds")
    negative = http.post(path, json={"ttl_seconds": 5, "wait_timeout_seconds": -1})
    assert_problem(
        negative, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.wait_timeout_seconds"
    )
    missing_lease = http.post(path, json={"lease_id": "0" * 32})
    assert_problem(missing_lease, 404, "LEASE_NOT_FOUND", code="NOT_FOUND")


def test_wait_timeout_limit_is_the_same_over_http_grpc_and_openapi(
    http: httpx.Client, locks: lock_pb2_grpc.LockServiceStub, prefix: str
) -> None:
    """Issue #14 item 5: a wait_timeout_seconds at the OpenAPI document's own maximum answered
    504 at once (the adapter's deadline overflowed) where gRPC said INVALID_ARGUMENT. Now the
    document's maximum is the server's, a wait at it is accepted, and one past it is a 400 on
    HTTP exactly as it is INVALID_ARGUMENT on gRPC."""
    schema = http.get("/openapi.json").json()["components"]["schemas"]["AcquireLockRequest"]
    maximum = schema["properties"]["wait_timeout_seconds"]["maximum"]
    assert maximum == 3600
    at_most = http.post(
        f"/v1/locks/{prefix}/at-max:acquire", json={"ttl_seconds": 5, "wait_timeout_seconds": maximum}
    )
    assert at_most.status_code == 200, at_most.text
    for too_long in (maximum + 0.5, 315_576_000_000, 1e300):
        over = http.post(
            f"/v1/locks/{prefix}/over:acquire", json={"ttl_seconds": 5, "wait_timeout_seconds": too_long}
        )
        problem = assert_problem(
            over, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT", field="body.wait_timeout_seconds"
        )
        assert "3600" in problem["detail"]
    request = lock_pb2.AcquireLockRequest(name=f"{prefix}/over", ttl_seconds=5)
    request.wait_timeout.FromSeconds(int(maximum) + 1)
    failure = expect_failure(locks.AcquireLock, request, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert failure.metadata == {"field": "wait_timeout", "max": "3600"}
    request.wait_timeout.FromSeconds(315_576_000_000)
    expect_failure(locks.AcquireLock, request, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
