"""Transact: compares, then puts and deletes, all or nothing, as one store revision."""

from __future__ import annotations

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
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def put(key: str, value: bytes, content_type: str = "") -> resource_pb2.Operation:
    return resource_pb2.Operation(
        put=resource_pb2.PutOperation(key=key, value=value, content_type=content_type)
    )


def delete(key: str) -> resource_pb2.Operation:
    return resource_pb2.Operation(delete=resource_pb2.DeleteOperation(key=key))


def transact(
    resources: Stub, compares: list[resource_pb2.Compare], operations: list[resource_pb2.Operation]
) -> resource_pb2.TransactResponse:
    reply: resource_pb2.TransactResponse = resources.Transact(
        resource_pb2.TransactRequest(compares=compares, operations=operations), timeout=10
    )
    return reply


def test_puts_and_deletes_share_one_revision(resources: Stub, prefix: str) -> None:
    a, b, c, d = (f"{prefix}/{n}" for n in "abcd")
    a1 = create(resources, a, b"a1", content_type="text/plain")
    b1 = create(resources, b, b"b1")
    c1 = create(resources, c, b"c1")

    reply = transact(
        resources,
        [
            resource_pb2.Compare(key=a, version=1),
            resource_pb2.Compare(key=b, etag=b1.etag),
            resource_pb2.Compare(key=c, value=b"c1"),
            resource_pb2.Compare(key=d, absent=True),
        ],
        [put(a, b"a2"), delete(b), put(d, b"d1", "text/csv")],
    )
    revision = c1.mod_revision + 1
    assert reply.revision == revision
    assert len(reply.results) == 3

    a2, gone, d1 = reply.results
    assert not a2.deleted
    assert (a2.resource.key, a2.resource.value, a2.resource.version) == (a, b"a2", 2)
    assert a2.resource.content_type == "text/plain"
    assert a2.resource.create_revision == a1.create_revision
    assert a2.resource.mod_revision == revision
    assert gone.deleted
    assert gone.resource == b1
    assert not d1.deleted
    assert (d1.resource.key, d1.resource.value, d1.resource.version) == (d, b"d1", 1)
    assert d1.resource.content_type == "text/csv"
    assert d1.resource.create_revision == revision
    assert d1.resource.mod_revision == revision

    assert get(resources, a) == a2.resource
    assert get(resources, d) == d1.resource
    assert get(resources, c) == c1
    assert_missing(resources, b)
    # The whole transaction took exactly one revision.
    assert create(resources, f"{prefix}/next", b"x").mod_revision == revision + 1


def test_compare_absent_false_requires_presence(resources: Stub, prefix: str) -> None:
    a, b = f"{prefix}/a", f"{prefix}/b"
    create(resources, a, b"x")
    reply = transact(resources, [resource_pb2.Compare(key=a, absent=False)], [put(b, b"y")])
    assert reply.results[0].resource.version == 1
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[resource_pb2.Compare(key=f"{prefix}/none", absent=False)], operations=[put(b, b"z")]
        ),
        grpc.StatusCode.ABORTED,
        "TRANSACTION_CONFLICT",
    )
    assert_conflict_is(conflict_of(failure), f"{prefix}/none", None, "present")
    assert get(resources, b).value == b"y"


def test_transaction_without_compares_applies(resources: Stub, prefix: str) -> None:
    a = f"{prefix}/a"
    reply = transact(resources, [], [put(a, b"x")])
    assert reply.results[0].resource == get(resources, a)
    assert reply.results[0].resource.mod_revision == reply.revision


def test_failing_second_compare_leaves_every_key_untouched(resources: Stub, prefix: str) -> None:
    a, b, c = f"{prefix}/a", f"{prefix}/b", f"{prefix}/c"
    a1 = create(resources, a, b"a1")
    b1 = create(resources, b, b"b1")
    b2 = update(resources, b, b"b2")
    c1 = create(resources, c, b"c1")

    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[
                resource_pb2.Compare(key=a, version=1),
                resource_pb2.Compare(key=b, etag=b1.etag),
                resource_pb2.Compare(key=c, version=1),
            ],
            operations=[put(a, b"lost"), delete(c), put(f"{prefix}/new", b"lost")],
        ),
        grpc.StatusCode.ABORTED,
        "TRANSACTION_CONFLICT",
    )
    assert failure.metadata == {"key": b, "compare_index": "1", "current_version": "2"}
    detail = conflict_of(failure)
    assert detail.compare_index == 1
    assert_conflict_is(detail, b, b2, f"etag {b1.etag}")
    assert detail.revision == c1.mod_revision

    assert get(resources, a) == a1
    assert get(resources, b) == b2
    assert get(resources, c) == c1
    assert_missing(resources, f"{prefix}/new")
    # Nothing committed: the next write takes the very next revision.
    assert create(resources, f"{prefix}/next", b"x").mod_revision == c1.mod_revision + 1


def test_conflict_names_the_first_failing_compare(resources: Stub, prefix: str) -> None:
    a, b = f"{prefix}/a", f"{prefix}/b"
    a1 = create(resources, a, b"a1")
    b1 = create(resources, b, b"b1")
    cases: list[tuple[list[resource_pb2.Compare], int, str, resource_pb2.Resource | None, str]] = [
        ([resource_pb2.Compare(key=a, version=9)], 0, a, a1, "version 9"),
        (
            [resource_pb2.Compare(key=a, version=1), resource_pb2.Compare(key=b, value=b"no")],
            1,
            b,
            b1,
            "value of 2 bytes",
        ),
        (
            [
                resource_pb2.Compare(key=a, value=b"a1"),
                resource_pb2.Compare(key=b, version=1),
                resource_pb2.Compare(key=f"{prefix}/missing", version=1),
                resource_pb2.Compare(key=a, absent=True),
            ],
            2,
            f"{prefix}/missing",
            None,
            "version 1",
        ),
        (
            [resource_pb2.Compare(key=b, etag=b1.etag), resource_pb2.Compare(key=a, absent=True)],
            1,
            a,
            a1,
            "absent",
        ),
    ]
    for compares, index, key, current, expected in cases:
        failure = expect_failure(
            resources.Transact,
            resource_pb2.TransactRequest(compares=compares, operations=[put(a, b"lost")]),
            grpc.StatusCode.ABORTED,
            "TRANSACTION_CONFLICT",
        )
        assert failure.metadata["compare_index"] == str(index)
        assert failure.metadata["key"] == key
        detail = conflict_of(failure)
        assert detail.compare_index == index
        assert_conflict_is(detail, key, current, expected)
    assert get(resources, a) == a1


def test_delete_of_a_missing_key_is_not_found_and_applies_nothing(resources: Stub, prefix: str) -> None:
    a, missing = f"{prefix}/a", f"{prefix}/missing"
    a1 = create(resources, a, b"a1")
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            operations=[put(a, b"lost"), put(f"{prefix}/new", b"lost"), delete(missing)]
        ),
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert failure.metadata == {"key": missing}
    assert get(resources, a) == a1
    assert_missing(resources, f"{prefix}/new")
    assert create(resources, f"{prefix}/next", b"x").mod_revision == a1.mod_revision + 1


def test_same_key_twice_in_operations_is_invalid(resources: Stub, prefix: str) -> None:
    a = f"{prefix}/a"
    a1 = create(resources, a, b"a1")
    for ops in ([put(a, b"1"), put(a, b"2")], [put(a, b"1"), delete(a)], [delete(a), put(a, b"x")]):
        failure = expect_failure(
            resources.Transact, resource_pb2.TransactRequest(operations=ops), INVALID, "INVALID_ARGUMENT"
        )
        assert failure.metadata == {"field": "operations[1].key"}
        assert a in failure.message
    assert get(resources, a) == a1


def test_empty_operations_is_invalid(resources: Stub, prefix: str) -> None:
    a = f"{prefix}/a"
    create(resources, a, b"a1")
    for compares in ([], [resource_pb2.Compare(key=a, version=1)]):
        failure = expect_failure(
            resources.Transact,
            resource_pb2.TransactRequest(compares=compares),
            INVALID,
            "INVALID_ARGUMENT",
        )
        assert failure.metadata == {"field": "operations"}


def test_more_than_128_operations_or_compares_is_invalid(resources: Stub, prefix: str) -> None:
    keys = [f"{prefix}/k{i:03d}" for i in range(129)]
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(operations=[put(k, b"x") for k in keys]),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "operations", "limit": "128"}
    assert "128" in failure.message
    for key in (keys[0], keys[128]):
        assert_missing(resources, key)

    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[resource_pb2.Compare(key=k, absent=True) for k in keys],
            operations=[put(keys[0], b"x")],
        ),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "compares", "limit": "128"}
    assert_missing(resources, keys[0])

    # Exactly 128 is fine.
    reply = transact(resources, [], [put(k, b"x") for k in keys[:128]])
    assert len(reply.results) == 128
    assert {r.resource.mod_revision for r in reply.results} == {reply.revision}
    assert_missing(resources, keys[128])


def test_compare_with_no_expectation_is_invalid(resources: Stub, prefix: str) -> None:
    a = f"{prefix}/a"
    a1 = create(resources, a, b"a1")
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[resource_pb2.Compare(key=a, version=1), resource_pb2.Compare(key=a)],
            operations=[put(a, b"lost")],
        ),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "compares[1]"}
    assert get(resources, a) == a1


def test_operation_with_neither_put_nor_delete_is_invalid(resources: Stub, prefix: str) -> None:
    a = f"{prefix}/a"
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(operations=[put(a, b"x"), resource_pb2.Operation()]),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "operations[1]"}
    assert_missing(resources, a)


def test_bad_key_in_an_operation_is_invalid_key(resources: Stub, prefix: str) -> None:
    failure = expect_failure(
        resources.Transact,
        resource_pb2.TransactRequest(operations=[put(f"{prefix}/ok", b"x"), put(f"{prefix}/bad key", b"x")]),
        INVALID,
        "INVALID_KEY",
    )
    assert failure.metadata["field"] == "operations[1].key"
    assert_missing(resources, f"{prefix}/ok")
