"""Bad input: clear INVALID_ARGUMENT answers naming the broken rule, nothing written, still serving.

Also writes naming a fence or a lease that cannot apply: refused, and nothing written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory, assert_missing, create, expect_failure, get

Stub = resource_pb2_grpc.ResourceServiceStub
INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED

ALPHABET = "A-Z a-z 0-9 - . _ ~ / : @ + = , !"

# (name, key suffix after "<prefix>/" or a whole key when it starts with "!", message fragment)
BAD_KEYS: list[tuple[str, str, str]] = [
    ("empty", "!", "key is empty"),
    ("too-long", "x" * 600, "the limit is 512 bytes"),
    ("multibyte-too-long", "!" + "\u00e9" * 257, "is 514 bytes; the limit is 512 bytes"),
    ("space", "a b", ALPHABET),
    ("tab", "a\tb", ALPHABET),
    ("newline", "a\n", ALPHABET),
    ("non-ascii", "caf\u00e9", ALPHABET),
    ("nul", "a\x00b", ALPHABET),
    ("percent", "a%20b", ALPHABET),
    ("leading-slash", "!/abc", "must not start or end with '/'"),
    ("trailing-slash", "abc/", "must not start or end with '/'"),
    ("double-slash", "a//b", "empty, '.' or '..' path segment"),
    ("dot-segment", "a/./b", "empty, '.' or '..' path segment"),
    ("dotdot-segment", "a/../b", "empty, '.' or '..' path segment"),
    ("dot-last", "a/.", "empty, '.' or '..' path segment"),
    ("dotdot-whole", "!..", "empty, '.' or '..' path segment"),
]


def list_keys(resources: Stub, prefix: str) -> list[str]:
    reply = resources.ListResources(resource_pb2.ListResourcesRequest(prefix=prefix), timeout=10)
    return [r.key for r in reply.resources]


def bad_key(prefix: str, spec: str) -> str:
    return spec[1:] if spec.startswith("!") else f"{prefix}/{spec}"


def key_calls(resources: Stub, key: str, prefix: str) -> Iterator[tuple[str, Callable[..., Any], Any, str]]:
    """Every ResourceService call that takes a key, with `key`; and the field each names."""
    yield "create", resources.CreateResource, resource_pb2.CreateResourceRequest(key=key, value=b"x"), "key"
    yield "get", resources.GetResource, resource_pb2.GetResourceRequest(key=key), "key"
    yield (
        "update",
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(key=key, value=b"x", allow_missing=True),
        "key",
    )
    yield (
        "delete",
        resources.DeleteResource,
        resource_pb2.DeleteResourceRequest(key=key, allow_missing=True),
        "key",
    )
    yield (
        "cas",
        resources.CompareAndSet,
        resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, value=b"x"),
        "key",
    )
    yield (
        "versions",
        resources.ListResourceVersions,
        resource_pb2.ListResourceVersionsRequest(key=key),
        "key",
    )
    yield (
        "transact-put",
        resources.Transact,
        resource_pb2.TransactRequest(
            operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"x"))]
        ),
        "operations[0].key",
    )
    yield (
        "transact-compare",
        resources.Transact,
        resource_pb2.TransactRequest(
            compares=[resource_pb2.Compare(key=key, absent=True)],
            operations=[
                resource_pb2.Operation(put=resource_pb2.PutOperation(key=f"{prefix}/fine", value=b"x"))
            ],
        ),
        "compares[0].key",
    )


@pytest.mark.parametrize(
    ("spec", "fragment"), [(s, f) for _, s, f in BAD_KEYS], ids=[n for n, _, _ in BAD_KEYS]
)
def test_bad_key_is_invalid_key_on_every_call(resources: Stub, prefix: str, spec: str, fragment: str) -> None:
    key = bad_key(prefix, spec)
    for name, call, request, field in key_calls(resources, key, prefix):
        failure = expect_failure(call, request, INVALID, "INVALID_KEY")
        assert fragment in failure.message, f"{name}: {failure.message!r}"
        assert failure.metadata["field"] == field, name
        assert failure.conflict is None
    # Nothing was written, under the test's prefix or under the bad key itself.
    assert list_keys(resources, f"{prefix}/") == []
    longest_valid_start = re.match(r"[A-Za-z0-9\-._~/:@+=,!]*", key[:512])
    assert longest_valid_start is not None
    if longest_valid_start.group():
        assert list_keys(resources, longest_valid_start.group()) == []
    # The server still serves.
    assert create(resources, f"{prefix}/ok", b"ok").version == 1
    assert list_keys(resources, f"{prefix}/") == [f"{prefix}/ok"]


def test_key_length_limit_counts_bytes_and_allows_exactly_the_limit(resources: Stub, prefix: str) -> None:
    at_limit = f"{prefix}/" + "k" * (512 - len(prefix) - 1)
    assert len(at_limit.encode()) == 512
    assert create(resources, at_limit, b"x").key == at_limit
    failure = expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=at_limit + "k", value=b"x"),
        INVALID,
        "INVALID_KEY",
    )
    assert failure.metadata == {"field": "key", "limit": "512"}
    assert "513 bytes" in failure.message


def test_every_key_character_is_accepted(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/AZaz09-._~:@+=,!/x.y/..z/z.."
    created = create(resources, key, b"x")
    assert get(resources, key) == created
    listed = resources.ListResources(resource_pb2.ListResourcesRequest(prefix=f"{prefix}/"), timeout=10)
    assert [r.key for r in listed.resources] == [key]


@pytest.mark.parametrize(
    ("bad_prefix", "fragment"), [("a b", ALPHABET), ("caf\u00e9", ALPHABET), ("p" * 513, "512 bytes")]
)
def test_bad_list_prefix_is_invalid_key(resources: Stub, bad_prefix: str, fragment: str) -> None:
    failure = expect_failure(
        resources.ListResources, resource_pb2.ListResourcesRequest(prefix=bad_prefix), INVALID, "INVALID_KEY"
    )
    assert failure.metadata["field"] == "prefix"
    assert fragment in failure.message


def test_bad_content_type_is_invalid_argument(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    for content_type in ("x" * 256, "text/plain\n", "caf\u00e9/x"):
        failure = expect_failure(
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=key, value=b"x", content_type=content_type),
            INVALID,
            "INVALID_ARGUMENT",
        )
        assert failure.metadata == {"field": "content_type"}
    assert_missing(resources, key)
    assert create(resources, key, b"x", content_type="text/plain; charset=utf-8").content_type == (
        "text/plain; charset=utf-8"
    )


def test_value_over_the_default_1_mib_limit_is_value_too_large(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/big"
    failure = expect_failure(
        resources.CreateResource,
        resource_pb2.CreateResourceRequest(key=key, value=b"x" * (1024 * 1024 + 1)),
        INVALID,
        "VALUE_TOO_LARGE",
    )
    assert failure.metadata == {"field": "value", "limit": "1048576"}
    assert "1048576" in failure.message
    assert_missing(resources, key)
    created = create(resources, key, b"x" * (1024 * 1024))
    assert created.version == 1
    assert len(get(resources, key).value) == 1024 * 1024


def test_value_limit_is_configurable(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory(extra_args=["--max-value-bytes", "1024"]).start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        key = f"{prefix}/k"
        big = b"v" * 1025
        existing = create(resources, f"{prefix}/existing", b"small")
        rejected: list[tuple[Callable[..., Any], Any, str]] = [
            (resources.CreateResource, resource_pb2.CreateResourceRequest(key=key, value=big), "value"),
            (
                resources.UpdateResource,
                resource_pb2.UpdateResourceRequest(key=key, value=big, allow_missing=True),
                "value",
            ),
            (
                resources.UpdateResource,
                resource_pb2.UpdateResourceRequest(key=existing.key, value=big),
                "value",
            ),
            (
                resources.CompareAndSet,
                resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, value=big),
                "value",
            ),
            (
                resources.CompareAndSet,
                resource_pb2.CompareAndSetRequest(key=existing.key, expected_value=big, value=b"x"),
                "expected_value",
            ),
            (
                resources.Transact,
                resource_pb2.TransactRequest(
                    operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=big))]
                ),
                "operations[0].value",
            ),
        ]
        for call, request, field in rejected:
            failure = expect_failure(call, request, INVALID, "VALUE_TOO_LARGE")
            assert "1024" in failure.message
            assert "1025" in failure.message
            assert failure.metadata == {"field": field, "limit": "1024"}
        assert_missing(resources, key)
        assert get(resources, existing.key) == existing
        # Exactly the limit is fine.
        assert create(resources, key, b"v" * 1024).value == b"v" * 1024


def test_key_limit_is_configurable(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory(extra_args=["--max-key-bytes", "16"]).start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        fits = f"{prefix}/a"[-16:]
        too_long = f"{prefix}/ab"[-17:]
        assert (len(fits), len(too_long)) == (16, 17)
        failure = expect_failure(
            resources.CreateResource,
            resource_pb2.CreateResourceRequest(key=too_long, value=b"x"),
            INVALID,
            "INVALID_KEY",
        )
        assert failure.metadata == {"field": "key", "limit": "16"}
        assert "17 bytes" in failure.message
        assert "16 bytes" in failure.message
        assert create(resources, fits, b"x").key == fits
        assert get(resources, fits).value == b"x"
        # The 17-byte key was not written: listing everything shows only the 16-byte one.
        listed = resources.ListResources(resource_pb2.ListResourcesRequest(), timeout=10)
        assert [r.key for r in listed.resources] == [fits]


def test_corrupt_request_message_is_invalid_argument_and_the_server_keeps_serving(
    server: ServerProcess, resources: Stub, prefix: str
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary(
            "/lockservice.v1.ResourceService/CreateResource",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff\xff\xff", timeout=10)
        # A corrupt message is the client's mistake: a 4xx-class code, never UNKNOWN or INTERNAL
        # (HTTP 500), and no Python exception text in the answer (DESIGN.md sections 3 and 5).
        assert caught.value.code() == INVALID
        assert "<class" not in (caught.value.details() or "")
    assert create(resources, f"{prefix}/after", b"x").version == 1


def test_unknown_method_is_unimplemented(server: ServerProcess, resources: Stub, prefix: str) -> None:
    with grpc.insecure_channel(server.address) as channel:
        raw = channel.unary_unary(
            "/lockservice.v1.ResourceService/NoSuchMethod",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"", timeout=10)
        assert caught.value.code() == UNIMPLEMENTED
    assert create(resources, f"{prefix}/after", b"x").version == 1


# -- fences and leases named by a ResourceService write ----------------------------------------------


def fenced_writes(
    resources: Stub, key: str, existing: str, fence: lock_pb2.Fence
) -> list[tuple[Callable[..., Any], Any]]:
    return [
        (resources.UpdateResource, resource_pb2.UpdateResourceRequest(key=existing, value=b"x", fence=fence)),
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=key, value=b"x", allow_missing=True, fence=fence),
        ),
        (resources.DeleteResource, resource_pb2.DeleteResourceRequest(key=existing, fence=fence)),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, value=b"x", fence=fence),
        ),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"x"))],
                fence=fence,
            ),
        ),
    ]


def test_fence_of_a_never_acquired_lock_is_stale_fence(resources: Stub, prefix: str) -> None:
    key, lock_name = f"{prefix}/k", f"{prefix}/never-locked"
    existing = create(resources, f"{prefix}/existing", b"x")
    fence = lock_pb2.Fence(lock_name=lock_name, token=1)
    for call, request in fenced_writes(resources, key, existing.key, fence):
        failure = expect_failure(call, request, grpc.StatusCode.ABORTED, "STALE_FENCE")
        assert failure.metadata["lock_name"] == lock_name
        assert failure.metadata["token"] == "1"
        assert lock_name in failure.message
        # Every ABORTED carries a ConflictDetail with the current state (errors.proto): here, a
        # lock nobody holds and no token ever handed out.
        assert failure.conflict is not None, "STALE_FENCE without a ConflictDetail"
        assert failure.conflict.key == lock_name
        assert failure.conflict.holder == ""
        assert failure.conflict.current_token == 0
    assert_missing(resources, key)
    assert get(resources, existing.key) == existing


def test_malformed_fence_is_invalid(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    existing = create(resources, f"{prefix}/existing", b"x")
    cases = [
        (lock_pb2.Fence(lock_name=f"{prefix}/lock", token=0), "INVALID_ARGUMENT", "fence.token"),
        (lock_pb2.Fence(lock_name=f"{prefix}/lock", token=-5), "INVALID_ARGUMENT", "fence.token"),
        (lock_pb2.Fence(lock_name="bad name", token=1), "INVALID_KEY", "fence.lock_name"),
        (lock_pb2.Fence(lock_name="", token=1), "INVALID_KEY", "fence.lock_name"),
    ]
    for fence, reason, field in cases:
        for call, request in fenced_writes(resources, key, existing.key, fence):
            failure = expect_failure(call, request, INVALID, reason)
            assert failure.metadata["field"] == field
    assert_missing(resources, key)
    assert get(resources, existing.key) == existing


def test_unknown_lease_is_lease_not_found_and_nothing_is_written(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    lease_id = "0123456789abcdef0123456789abcdef"
    existing = create(resources, f"{prefix}/existing", b"x")
    calls: list[tuple[Callable[..., Any], Any]] = [
        (resources.CreateResource, resource_pb2.CreateResourceRequest(key=key, lease_id=lease_id)),
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=existing.key, value=b"y", lease_id=lease_id),
        ),
        (
            resources.UpdateResource,
            resource_pb2.UpdateResourceRequest(key=key, allow_missing=True, lease_id=lease_id),
        ),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expect_absent=True, lease_id=lease_id),
        ),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, lease_id=lease_id))]
            ),
        ),
    ]
    for call, request in calls:
        failure = expect_failure(call, request, grpc.StatusCode.NOT_FOUND, "LEASE_NOT_FOUND")
        assert failure.metadata["lease_id"] == lease_id
        assert lease_id in failure.message
    assert_missing(resources, key)
    assert get(resources, existing.key) == existing


@pytest.mark.parametrize(
    ("field", "seconds", "nanos"),
    [
        ("wait_timeout", 3000, -1),  # mixed signs: not a Duration (it would read as 2999.999999999 s)
        ("wait_timeout", 0, 1_000_000_000),  # nanos past +-999,999,999
        ("wait_timeout", 1, -(2**31)),
        ("lock_delay", 1, -5),
        ("lock_delay", -1, 5),
    ],
)
def test_a_malformed_duration_is_invalid_argument(
    locks: lock_pb2_grpc.LockServiceStub, prefix: str, field: str, seconds: int, nanos: int
) -> None:
    request = lock_pb2.AcquireLockRequest(name=f"{prefix}/duration", ttl_seconds=30)
    getattr(request, field).CopyFrom(Duration(seconds=seconds, nanos=nanos))
    failure = expect_failure(locks.AcquireLock, request, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert failure.metadata["field"] == field
