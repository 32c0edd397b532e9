"""Every failure comes back as the exception class of its reason, with the conflict decoded."""

from __future__ import annotations

import datetime

import grpc
import pytest

from lockservice_client import (
    AlreadyExists,
    Client,
    ConflictError,
    DeadlineExceeded,
    InvalidKey,
    LeaseNotFound,
    LockHeld,
    LockNotHeld,
    LockserviceError,
    NotFound,
    ResourceNotFound,
    StaleFence,
    TransactionConflict,
    Unavailable,
    ValueConflict,
    VersionConflict,
    VersionNotFound,
)
from lockservice_client.errors import CLASS_BY_REASON
from lockservice_client.messages import Compare, Fence, Operation, PutOperation, errors_pb2


def test_every_reason_of_the_proto_has_its_class() -> None:
    reasons = set(errors_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    assert set(CLASS_BY_REASON) == reasons
    assert all(cls.reason_name == reason for reason, cls in CLASS_BY_REASON.items())


def test_create_on_an_existing_key_is_already_exists_with_the_current_state(
    client: Client, prefix: str
) -> None:
    key = f"{prefix}/k"
    created = client.create(key, b"v1")
    with pytest.raises(AlreadyExists) as caught:
        client.create(key, b"v2")
    error = caught.value
    assert isinstance(error, ConflictError)
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_EXISTS")
    assert str(error) == f"RESOURCE_EXISTS: {key} already exists at version 1"
    assert error.conflict is not None
    assert error.conflict.key == key
    assert error.conflict.exists
    assert error.conflict.current_version == 1
    assert error.conflict.current_etag == created.etag
    assert error.conflict.current_mod_revision == created.mod_revision
    assert error.conflict.current_update_time == created.update_time.ToDatetime(tzinfo=datetime.UTC)
    assert error.conflict.expected == "absent"


def test_stale_version_is_version_conflict_with_the_current_version(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"v1")
    current = client.put(key, b"v2", expected_version=1)
    with pytest.raises(VersionConflict) as caught:
        client.put(key, b"v3", expected_version=1)
    error = caught.value
    assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "VERSION_MISMATCH")
    assert error.metadata == {"key": key, "current_version": "2"}
    assert error.conflict is not None
    assert (error.conflict.current_version, error.conflict.current_etag) == (2, current.etag)
    assert error.conflict.expected == "version 1"


def test_failed_value_compare_is_value_conflict(client: Client, prefix: str) -> None:
    key = f"{prefix}/k"
    client.create(key, b"v1")
    with pytest.raises(ValueConflict) as caught:
        client.compare_and_set(key, b"new", expected_value=b"other")
    assert caught.value.conflict is not None
    assert caught.value.conflict.current_version == 1


def test_failed_transaction_compare_names_its_index(client: Client, prefix: str) -> None:
    client.create(f"{prefix}/a", b"a")
    client.create(f"{prefix}/b", b"b")
    compares = [Compare(key=f"{prefix}/a", version=1), Compare(key=f"{prefix}/b", version=5)]
    operations = [Operation(put=PutOperation(key=f"{prefix}/c", value=b"c"))]
    with pytest.raises(TransactionConflict) as caught:
        client.transact(compares, operations)
    assert caught.value.conflict is not None
    assert (caught.value.conflict.key, caught.value.conflict.compare_index) == (f"{prefix}/b", 1)
    assert caught.value.conflict.current_version == 1


def test_missing_key_and_version_are_not_found(client: Client, prefix: str) -> None:
    with pytest.raises(ResourceNotFound) as missing:
        client.get(f"{prefix}/nothing")
    assert isinstance(missing.value, NotFound)
    assert (missing.value.code, missing.value.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        {"key": f"{prefix}/nothing"},
    )
    client.create(f"{prefix}/k", b"v1")
    with pytest.raises(VersionNotFound) as version:
        client.get(f"{prefix}/k", version=9)
    assert version.value.conflict is not None
    assert version.value.conflict.current_version == 1


def test_bad_key_is_invalid_key(client: Client) -> None:
    with pytest.raises(InvalidKey) as caught:
        client.get("/leading-slash")
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_KEY")


def test_lock_conflicts_carry_holder_token_and_expiry(client: Client, prefix: str) -> None:
    name = f"{prefix}/lock"
    held = client.acquire_lock(name, ttl_seconds=30, holder="worker-1")
    with pytest.raises(LockHeld) as caught:
        client.acquire_lock(name, ttl_seconds=30, holder="worker-2")
    conflict = caught.value.conflict
    assert conflict is not None
    assert (conflict.key, conflict.holder, conflict.current_token, conflict.lease_id) == (
        name,
        "worker-1",
        held.token,
        held.lease_id,
    )
    assert conflict.expire_time == held.expire_time.ToDatetime(tzinfo=datetime.UTC)
    with pytest.raises(LockNotHeld):
        client.release_lock(name, held.token + 1)
    with pytest.raises(StaleFence):
        client.put(f"{prefix}/fenced", b"x", fence=Fence(lock_name=name, token=held.token + 1))
    client.revoke_lease(held.lease_id)
    with pytest.raises(LeaseNotFound):
        client.refresh_lease(held.lease_id)


def test_unreachable_server_is_unavailable_without_a_reason() -> None:
    with Client("127.0.0.1:1", timeout=5.0) as client, pytest.raises(Unavailable) as caught:
        client.get("k")
    assert (caught.value.code, caught.value.reason, caught.value.conflict) == (
        grpc.StatusCode.UNAVAILABLE,
        "",
        None,
    )
    assert str(caught.value).startswith("UNAVAILABLE: ")


def test_passed_deadline_is_deadline_exceeded(client: Client, prefix: str) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        list(client.watch(prefix, prefix=True, timeout=0.3))
    assert isinstance(caught.value, LockserviceError)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_conflict_reason_always_has_a_conflict_even_when_the_detail_is_missing() -> None:
    error = LockHeld(
        "jobs/1 is held", code=grpc.StatusCode.ABORTED, reason="LOCK_HELD", metadata={"key": "jobs/1"}
    )
    assert (error.conflict.key, error.conflict.state_withheld, error.conflict.holder) == ("jobs/1", True, "")
    assert ConflictError("aborted", code=grpc.StatusCode.ABORTED).conflict is None
