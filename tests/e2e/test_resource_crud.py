"""Create, read, optimistic update and delete of one resource, over gRPC against a real server."""

from __future__ import annotations

import time

import grpc

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.e2e.support import (
    assert_conflict_is,
    assert_missing,
    conflict_of,
    create,
    expect_failure,
    get,
    update,
)

Stub = resource_pb2_grpc.ResourceServiceStub
ABORTED = grpc.StatusCode.ABORTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def test_create_starts_at_version_1_with_default_content_type(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/a"
    before_us = time.time_ns() // 1000
    created = create(resources, key, b"hello")
    after_us = time.time_ns() // 1000

    assert created.key == key
    assert created.value == b"hello"
    assert created.version == 1
    assert created.content_type == "application/octet-stream"
    assert created.create_revision > 0
    assert created.create_revision == created.mod_revision
    assert created.etag == f'"{created.create_revision}.1"'
    assert created.lease_id == ""
    assert created.create_time == created.update_time
    created_us = created.create_time.ToMicroseconds()
    assert before_us - 2_000_000 <= created_us <= after_us + 2_000_000

    assert get(resources, key) == created


def test_create_keeps_the_given_content_type(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/doc"
    created = create(resources, key, b'{"a": 1}', content_type="application/json")
    assert created.content_type == "application/json"
    assert get(resources, key).content_type == "application/json"

    # An update without a content type keeps it; one with a content type replaces it.
    kept = update(resources, key, b'{"a": 2}')
    assert kept.content_type == "application/json"
    replaced = update(resources, key, b"a=3", content_type="text/plain")
    assert replaced.content_type == "text/plain"
    assert get(resources, key).content_type == "text/plain"


def test_create_on_an_existing_key_is_already_exists_with_the_current_state(
    resources: Stub, prefix: str
) -> None:
    key = f"{prefix}/taken"
    first = create(resources, key, b"one")
    second = update(resources, key, b"two")

    failure = expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=key, value=b"three"),
        grpc.StatusCode.ALREADY_EXISTS,
        "RESOURCE_EXISTS",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, second, "absent")
    # The losing create changed nothing.
    now = get(resources, key)
    assert now == second
    assert now.create_revision == first.create_revision


def test_get_latest_and_retained_past_versions(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1", content_type="text/plain")
    v2 = update(resources, key, b"v2")
    v3 = update(resources, key, b"v3", content_type="text/csv")

    assert get(resources, key) == v3
    assert get(resources, key, version=3) == v3
    assert get(resources, key, version=2) == v2
    assert get(resources, key, version=1) == v1
    assert get(resources, key, version=1).content_type == "text/plain"
    assert get(resources, key, version=2).value == b"v2"
    assert v2.create_time == v1.create_time
    assert v2.update_time.ToMicroseconds() >= v1.update_time.ToMicroseconds()
    assert len({v1.etag, v2.etag, v3.etag}) == 3


def test_get_a_version_that_never_existed_is_version_not_found(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"v1")
    current = update(resources, key, b"v2")

    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key, version=7),
        NOT_FOUND,
        "VERSION_NOT_FOUND",
    )
    assert failure.metadata == {"key": key, "version": "7", "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, "version 7")


def test_get_missing_key_is_resource_not_found(resources: Stub, prefix: str) -> None:
    assert_missing(resources, f"{prefix}/never")
    expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=f"{prefix}/never", version=1),
        NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )


def test_get_negative_version_is_invalid_argument(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"v1")
    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key, version=-1),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "version"}


def test_update_with_the_current_expected_version_or_etag_succeeds(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")

    v2 = update(resources, key, b"v2", expected_version=1)
    assert (v2.version, v2.value) == (2, b"v2")
    assert v2.create_revision == v1.create_revision
    assert v2.mod_revision == v1.mod_revision + 1
    assert v2.etag == f'"{v1.create_revision}.2"'
    assert v2.etag != v1.etag
    assert v2.create_time == v1.create_time

    v3 = update(resources, key, b"v3", expected_etag=v2.etag)
    assert (v3.version, v3.value, v3.mod_revision) == (3, b"v3", v2.mod_revision + 1)
    assert get(resources, key) == v3


def test_update_with_a_stale_expected_version_is_aborted_with_the_current_state(
    resources: Stub, prefix: str
) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"v1")
    current = update(resources, key, b"v2")

    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"lost", expected_version=1),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert "version 1" in failure.message
    assert_conflict_is(conflict_of(failure), key, current, "version 1")
    assert get(resources, key) == current


def test_update_with_a_stale_expected_etag_is_aborted_with_the_current_state(
    resources: Stub, prefix: str
) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    current = update(resources, key, b"v2")

    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"lost", expected_etag=v1.etag),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, f"etag {v1.etag}")
    assert get(resources, key) == current


def test_update_of_a_missing_key_is_not_found(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/missing"
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x"),
        NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert failure.metadata == {"key": key}
    expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", expected_version=1),
        NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert_missing(resources, key)


def test_update_allow_missing_upserts(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/upsert"
    created = update(resources, key, b"first", allow_missing=True)
    assert (created.version, created.value) == (1, b"first")
    assert created.content_type == "application/octet-stream"
    assert created.create_revision == created.mod_revision
    assert get(resources, key) == created

    second = update(resources, key, b"second", allow_missing=True)
    assert (second.version, second.value) == (2, b"second")
    assert second.create_revision == created.create_revision


def test_update_allow_missing_with_an_expectation_on_a_missing_key_is_version_mismatch(
    resources: Stub, prefix: str
) -> None:
    key = f"{prefix}/upsert"
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", allow_missing=True, expected_version=3),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key}
    assert_conflict_is(conflict_of(failure), key, None, "version 3")
    assert_missing(resources, key)


def test_update_with_both_expected_version_and_etag_is_invalid(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", expected_version=1, expected_etag=v1.etag),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "expected_etag"}
    assert failure.conflict is None
    assert get(resources, key) == v1


def test_update_with_expected_version_zero_is_invalid(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", expected_version=0),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "expected_version"}
    assert get(resources, key) == v1


def test_delete_returns_the_last_state_and_the_revision(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"v1")
    last = update(resources, key, b"v2")

    reply = resources.DeleteResource(resource_pb2.DeleteResourceRequest(key=key), timeout=10)
    assert reply.resource == last
    assert reply.revision == last.mod_revision + 1
    assert_missing(resources, key)


def test_delete_with_the_current_expected_version_or_etag(resources: Stub, prefix: str) -> None:
    by_version = f"{prefix}/by-version"
    by_etag = f"{prefix}/by-etag"
    create(resources, by_version, b"a")
    v2 = update(resources, by_version, b"b")
    e1 = create(resources, by_etag, b"c")

    reply = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=by_version, expected_version=2), timeout=10
    )
    assert reply.resource == v2
    assert reply.revision == e1.mod_revision + 1
    reply = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=by_etag, expected_etag=e1.etag), timeout=10
    )
    assert reply.resource == e1
    assert_missing(resources, by_version)
    assert_missing(resources, by_etag)


def test_delete_with_a_stale_expectation_is_aborted_and_deletes_nothing(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    current = update(resources, key, b"v2")

    failure = expect_failure(
        resources.DeleteResource,
        resource_pb2.DeleteResourceRequest(key=key, expected_version=1),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, "version 1")

    failure = expect_failure(
        resources.DeleteResource,
        resource_pb2.DeleteResourceRequest(key=key, expected_etag=v1.etag),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert_conflict_is(conflict_of(failure), key, current, f"etag {v1.etag}")
    assert get(resources, key) == current


def test_delete_with_both_expectations_is_invalid(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    failure = expect_failure(
        resources.DeleteResource,
        resource_pb2.DeleteResourceRequest(key=key, expected_version=1, expected_etag=v1.etag),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "expected_etag"}
    assert get(resources, key) == v1


def test_delete_of_a_missing_key_is_not_found_unless_allow_missing(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/missing"
    failure = expect_failure(
        resources.DeleteResource,
        resource_pb2.DeleteResourceRequest(key=key),
        NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert failure.metadata == {"key": key}

    # allow_missing: success, no resource, the current revision, and no revision spent.
    marker = create(resources, f"{prefix}/marker", b"m")
    reply = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=key, allow_missing=True), timeout=10
    )
    assert not reply.HasField("resource")
    assert reply.revision == marker.mod_revision
    after = create(resources, f"{prefix}/after", b"m")
    assert after.mod_revision == marker.mod_revision + 1


def test_delete_allow_missing_of_an_existing_key_deletes_it(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"v1")
    reply = resources.DeleteResource(
        resource_pb2.DeleteResourceRequest(key=key, allow_missing=True), timeout=10
    )
    assert reply.resource == v1
    assert reply.revision == v1.mod_revision + 1
    assert_missing(resources, key)


def test_recreate_after_delete_starts_a_new_incarnation(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    old1 = create(resources, key, b"old1")
    update(resources, key, b"old2")
    old3 = update(resources, key, b"old3")
    deleted = resources.DeleteResource(resource_pb2.DeleteResourceRequest(key=key), timeout=10)

    new = create(resources, key, b"new")
    assert new.version == 1
    assert new.create_revision == deleted.revision + 1
    assert new.create_revision == new.mod_revision
    assert new.create_revision > old1.create_revision
    assert new.etag != old1.etag
    assert new.create_time.ToMicroseconds() >= old3.update_time.ToMicroseconds()
    # The old incarnation's history is gone: version 2 of the new one does not exist, and the
    # old etag does not match the new version 1.
    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key, version=2),
        NOT_FOUND,
        "VERSION_NOT_FOUND",
    )
    assert conflict_of(failure).current_version == 1
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", expected_etag=old1.etag),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert_conflict_is(conflict_of(failure), key, new, f"etag {old1.etag}")
    versions = resources.ListResourceVersions(
        resource_pb2.ListResourceVersionsRequest(key=key), timeout=10
    ).versions
    assert [v.version for v in versions] == [1]
    assert versions[0].create_revision == new.create_revision


def test_store_revision_increases_by_exactly_one_per_committed_change(resources: Stub, prefix: str) -> None:
    a, b = f"{prefix}/a", f"{prefix}/b"
    r1 = create(resources, a, b"1").mod_revision
    r2 = create(resources, b, b"1").mod_revision
    r3 = update(resources, a, b"2", expected_version=1).mod_revision
    # Failed writes commit nothing and spend no revision.
    expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=a, value=b"x", expected_version=1),
        ABORTED,
        "VERSION_MISMATCH",
    )
    expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=b, value=b"x"),
        grpc.StatusCode.ALREADY_EXISTS,
        "RESOURCE_EXISTS",
    )
    r4 = resources.DeleteResource(resource_pb2.DeleteResourceRequest(key=b), timeout=10).revision
    r5 = resources.CompareAndSet(
        resource_pb2.CompareAndSetRequest(key=a, expected_version=2, value=b"3"), timeout=10
    ).mod_revision
    r6 = update(resources, b, b"again", allow_missing=True).create_revision
    assert [r2 - r1, r3 - r2, r4 - r3, r5 - r4, r6 - r5] == [1, 1, 1, 1, 1]
    # Reads spend no revision either.
    get(resources, a)
    resources.ListResources(resource_pb2.ListResourcesRequest(prefix=prefix), timeout=10)
    assert create(resources, f"{prefix}/c", b"1").mod_revision == r6 + 1
