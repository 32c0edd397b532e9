"""CompareAndSet: each kind of expectation, each mismatch, and many concurrent incrementers."""

from __future__ import annotations

import threading

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
from tests.grpc_errors import decode

Stub = resource_pb2_grpc.ResourceServiceStub
ABORTED = grpc.StatusCode.ABORTED


def cas(resources: Stub, **fields: object) -> resource_pb2.Resource:
    reply: resource_pb2.Resource = resources.CompareAndSet(
        resource_pb2.CompareAndSetRequest(**fields),  # type: ignore[arg-type]
        timeout=10,
    )
    return reply


def test_expected_version_match_writes(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"one", content_type="text/plain")
    v2 = cas(resources, key=key, expected_version=1, value=b"two")
    assert (v2.version, v2.value, v2.content_type) == (2, b"two", "text/plain")
    assert v2.create_revision == v1.create_revision
    assert v2.mod_revision == v1.mod_revision + 1
    assert get(resources, key) == v2


def test_expected_etag_match_writes(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"one")
    v2 = cas(resources, key=key, expected_etag=v1.etag, value=b"two", content_type="text/csv")
    assert (v2.version, v2.value, v2.content_type) == (2, b"two", "text/csv")
    assert v2.etag != v1.etag
    assert get(resources, key) == v2


def test_expected_value_match_writes(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"one")
    v2 = cas(resources, key=key, expected_value=b"one", value=b"two")
    assert (v2.version, v2.value) == (2, b"two")
    # An empty value is a value too.
    v3 = cas(resources, key=key, expected_value=b"two", value=b"")
    assert (v3.version, v3.value) == (3, b"")
    v4 = cas(resources, key=key, expected_value=b"", value=b"four")
    assert (v4.version, v4.value) == (4, b"four")
    assert get(resources, key) == v4


def test_expect_absent_true_creates(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    created = cas(resources, key=key, expect_absent=True, value=b"new")
    assert (created.version, created.value) == (1, b"new")
    assert created.content_type == "application/octet-stream"
    assert created.create_revision == created.mod_revision
    assert get(resources, key) == created


def test_expect_absent_false_requires_presence(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expect_absent=False, value=b"x"),
        ABORTED,
        "VALUE_MISMATCH",
    )
    assert failure.metadata == {"key": key}
    assert_conflict_is(conflict_of(failure), key, None, "present")
    assert_missing(resources, key)

    v1 = create(resources, key, b"one")
    v2 = cas(resources, key=key, expect_absent=False, value=b"two")
    assert (v2.version, v2.value, v2.create_revision) == (2, b"two", v1.create_revision)


def test_stale_expected_version_is_version_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"one")
    current = update(resources, key, b"two")
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_version=1, value=b"x"),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, "version 1")
    assert get(resources, key) == current


def test_a_conflict_carries_the_current_value_up_to_4_kib(resources: Stub, prefix: str) -> None:
    """So a read-modify-write retries at once; a larger value is left out (read the key)."""
    for size, carried in ((4096, True), (4097, False)):
        key = f"{prefix}/k{size}"
        create(resources, key, b"x" * size, content_type="application/octet-stream")
        current = update(resources, key, b"y" * size)
        failure = expect_failure(
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expected_version=1, value=b"z"),
            ABORTED,
            "VERSION_MISMATCH",
        )
        detail = conflict_of(failure)
        assert detail.HasField("current_value") is carried
        assert detail.current_value == (b"y" * size if carried else b"")
        assert (detail.current_version, detail.current_content_type) == (2, "application/octet-stream")
        assert_conflict_is(detail, key, current, "version 1")


def test_expected_version_on_a_missing_key_is_version_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_version=1, value=b"x"),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key}
    assert_conflict_is(conflict_of(failure), key, None, "version 1")
    assert_missing(resources, key)


def test_stale_expected_etag_is_version_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    v1 = create(resources, key, b"one")
    current = update(resources, key, b"two")
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_etag=v1.etag, value=b"x"),
        ABORTED,
        "VERSION_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, f"etag {v1.etag}")
    assert get(resources, key) == current


def test_different_value_is_value_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    current = create(resources, key, b"actual")
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_value=b"other", value=b"x"),
        ABORTED,
        "VALUE_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "1"}
    assert_conflict_is(conflict_of(failure), key, current, "value of 5 bytes")
    # The message says what failed but never carries the values.
    assert "actual" not in failure.message
    assert "other" not in failure.message
    assert get(resources, key) == current


def test_expected_value_on_a_missing_key_is_value_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expected_value=b"", value=b"x"),
        ABORTED,
        "VALUE_MISMATCH",
    )
    assert_conflict_is(conflict_of(failure), key, None, "value of 0 bytes")
    assert_missing(resources, key)


def test_expect_absent_on_an_existing_key_is_value_mismatch(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    create(resources, key, b"one")
    current = update(resources, key, b"two")
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, value=b"x"),
        ABORTED,
        "VALUE_MISMATCH",
    )
    assert failure.metadata == {"key": key, "current_version": "2"}
    assert_conflict_is(conflict_of(failure), key, current, "absent")
    assert get(resources, key) == current


def test_no_expectation_is_invalid_argument(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    failure = expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, value=b"x"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "expected"}
    assert failure.conflict is None
    assert_missing(resources, key)
    v1 = create(resources, key, b"one")
    expect_failure(
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, value=b"x"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert get(resources, key) == v1


def test_expected_version_zero_is_invalid_argument(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    # Explicitly set to 0 (the oneof records it): not a valid version.
    request = resource_pb2.CompareAndSetRequest(key=key, value=b"x")
    request.expected_version = 0
    assert request.WhichOneof("expected") == "expected_version"
    failure = expect_failure(
        resources.CompareAndSet, request, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert failure.metadata == {"field": "expected_version"}
    assert_missing(resources, key)


# Sixteen clients contending on one key over the wire (each failed attempt costs a re-read, so
# the calls grow with the square of the clients: 64 could need ~12,000 calls); the store's rule for
# concurrent read-compare-write bodies is tests/store/contract/test_transactions.py's.
WORKERS = 16
INCREMENTS_PER_WORKER = 3
MAX_ATTEMPTS_PER_WORKER = WORKERS * INCREMENTS_PER_WORKER + INCREMENTS_PER_WORKER + 1


def test_concurrent_cas_incrementers_lose_no_update(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/counter"
    start = create(resources, key, b"0")
    successes: list[int] = []
    unexpected: list[str] = []
    lock = threading.Lock()
    go = threading.Event()

    def worker() -> None:
        done = 0
        attempts = 0
        current = get(resources, key)
        go.wait()
        while done < INCREMENTS_PER_WORKER and attempts < MAX_ATTEMPTS_PER_WORKER:
            attempts += 1
            try:
                written = cas(
                    resources,
                    key=key,
                    expected_version=current.version,
                    value=str(int(current.value) + 1).encode(),
                )
            except grpc.RpcError as error:
                failure = decode(error)
                if failure.code != ABORTED or failure.reason != "VERSION_MISMATCH":
                    with lock:
                        unexpected.append(f"{failure.code} {failure.reason}: {failure.message}")
                    return
                assert failure.conflict is not None
                # Re-read: the conflict says the version, but the value needs a fresh read.
                current = get(resources, key)
                continue
            done += 1
            with lock:
                successes.append(written.version)
            current = written

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    assert unexpected == []
    final = get(resources, key)
    assert int(final.value) == len(successes)
    assert final.version == 1 + len(successes)
    # Every success wrote a distinct version: no two writers ever both won the same compare.
    assert sorted(successes) == list(range(2, 2 + len(successes)))
    assert final.create_revision == start.create_revision
    # Each failed attempt follows another worker's success after the last read, so no worker can
    # fail more than WORKERS * INCREMENTS_PER_WORKER times: every worker finishes its increments.
    assert len(successes) == WORKERS * INCREMENTS_PER_WORKER
