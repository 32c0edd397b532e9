"""ListResources (prefix, order, AIP-158 pages, views), ListResourceVersions, and history retention."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from typing import Any

import grpc
import pytest

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.e2e.support import (
    ServerFactory,
    assert_conflict_is,
    conflict_of,
    create,
    expect_failure,
    get,
    update,
)

Stub = resource_pb2_grpc.ResourceServiceStub
INVALID = grpc.StatusCode.INVALID_ARGUMENT
BASIC = resource_pb2.RESOURCE_VIEW_BASIC
FULL = resource_pb2.RESOURCE_VIEW_FULL


def list_page(
    resources: Stub, prefix: str, page_size: int = 0, page_token: str = "", view: int = 0
) -> resource_pb2.ListResourcesResponse:
    reply: resource_pb2.ListResourcesResponse = resources.ListResources(
        resource_pb2.ListResourcesRequest(
            prefix=prefix,
            page_size=page_size,
            page_token=page_token,
            view=view,  # type: ignore[arg-type]
        ),
        timeout=10,
    )
    return reply


def list_versions(
    resources: Stub, key: str, page_size: int = 0, page_token: str = "", view: int = 0
) -> resource_pb2.ListResourceVersionsResponse:
    reply: resource_pb2.ListResourceVersionsResponse = resources.ListResourceVersions(
        resource_pb2.ListResourceVersionsRequest(
            key=key,
            page_size=page_size,
            page_token=page_token,
            view=view,  # type: ignore[arg-type]
        ),
        timeout=10,
    )
    return reply


def put_many(resources: Stub, keys: list[str], value: bytes = b"v") -> int:
    """Creates `keys` with Transact, up to 128 per call; returns the revision of the last call."""
    revision = 0
    for start in range(0, len(keys), 128):
        ops = [
            resource_pb2.Operation(put=resource_pb2.PutOperation(key=k, value=value))
            for k in keys[start : start + 128]
        ]
        revision = resources.Transact(resource_pb2.TransactRequest(operations=ops), timeout=30).revision
    return revision


def test_list_sees_only_its_prefix_in_key_order(resources: Stub, prefix: str) -> None:
    # Created out of order; byte order puts "B" < "a" < "a-" < "a/" < "a0" < "b".
    names = ["b", "a/x", "a0", "B", "a", "a-", "a/y/z"]
    for name in names:
        create(resources, f"{prefix}/dir/{name}", name.encode())
    create(resources, f"{prefix}/dir2/z", b"sibling with a longer name")
    create(resources, f"{prefix}/di", b"shorter than the prefix")

    reply = list_page(resources, f"{prefix}/dir/")
    assert [r.key for r in reply.resources] == [f"{prefix}/dir/{n}" for n in sorted(names)]
    assert reply.next_page_token == ""
    assert reply.revision >= max(r.mod_revision for r in reply.resources)

    assert [r.key for r in list_page(resources, f"{prefix}/dir/a/").resources] == [
        f"{prefix}/dir/a/x",
        f"{prefix}/dir/a/y/z",
    ]
    everything = [r.key for r in list_page(resources, f"{prefix}/").resources]
    assert everything == sorted([f"{prefix}/dir/{n}" for n in names] + [f"{prefix}/dir2/z", f"{prefix}/di"])
    # A prefix need not end at a '/': "dir" also matches "dir2".
    assert len(list_page(resources, f"{prefix}/dir").resources) == len(names) + 1
    assert list_page(resources, f"{prefix}/nothing-here/").resources == []


def test_list_reports_the_current_metadata_of_each_resource(resources: Stub, prefix: str) -> None:
    create(resources, f"{prefix}/a", b"1", content_type="text/plain")
    latest = update(resources, f"{prefix}/a", b"2")
    reply = list_page(resources, f"{prefix}/", view=FULL)
    assert list(reply.resources) == [latest]


def test_list_pages_through_every_key_once(resources: Stub, prefix: str) -> None:
    keys = [f"{prefix}/k{i}" for i in range(5)]
    for key in reversed(keys):
        create(resources, key, key.encode())

    seen: list[str] = []
    tokens: list[str] = []
    token = ""
    for _ in range(10):  # bounded: 3 pages expected
        reply = list_page(resources, f"{prefix}/", page_size=2, page_token=token)
        seen.extend(r.key for r in reply.resources)
        token = reply.next_page_token
        tokens.append(token)
        if not token:
            break
    assert seen == keys
    assert len(tokens) == 3
    assert tokens[0] and tokens[1] and tokens[0] != tokens[1]
    assert tokens[2] == ""

    # Exactly as many keys as the page size: one full page, and it is the last.
    first = list_page(resources, f"{prefix}/", page_size=5)
    assert [r.key for r in first.resources] == keys
    assert first.next_page_token == ""
    # A key created between pages shows up on a later page when it sorts after the cursor.
    page1 = list_page(resources, f"{prefix}/", page_size=2)
    create(resources, f"{prefix}/k9", b"late")
    rest = list_page(resources, f"{prefix}/", page_size=10, page_token=page1.next_page_token)
    assert [r.key for r in rest.resources] == [*keys[2:], f"{prefix}/k9"]
    assert rest.next_page_token == ""


def test_page_token_of_another_prefix_is_invalid_page_token(resources: Stub, prefix: str) -> None:
    for i in range(3):
        create(resources, f"{prefix}/a/{i}", b"x")
        create(resources, f"{prefix}/b/{i}", b"x")
    token = list_page(resources, f"{prefix}/a/", page_size=1).next_page_token
    assert token

    failure = expect_failure(
        resources.ListResources,
        resource_pb2.ListResourcesRequest(prefix=f"{prefix}/b/", page_size=1, page_token=token),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )
    assert failure.metadata == {"field": "page_token"}
    # The token still works with its own query.
    assert [r.key for r in list_page(resources, f"{prefix}/a/", 1, token).resources] == [f"{prefix}/a/1"]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!not-base64!!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"q": "0" * 16, "c": 5}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"q": "0" * 16, "c": "zzz"}).encode()).decode(),
    ],
)
def test_garbage_page_token_is_invalid_page_token(resources: Stub, prefix: str, token: str) -> None:
    create(resources, f"{prefix}/a", b"x")
    failure = expect_failure(
        resources.ListResources,
        resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_token=token),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )
    assert failure.metadata == {"field": "page_token"}
    failure = expect_failure(
        resources.ListResourceVersions,
        resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/a", page_token=token),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )
    assert failure.metadata == {"field": "page_token"}


def test_negative_page_size_is_invalid_argument(resources: Stub, prefix: str) -> None:
    create(resources, f"{prefix}/a", b"x")
    failure = expect_failure(
        resources.ListResources,
        resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=-1),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "page_size"}
    failure = expect_failure(
        resources.ListResourceVersions,
        resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/a", page_size=-1),
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "page_size"}


def test_page_size_defaults_to_100_and_is_coerced_down_to_1000(resources: Stub, prefix: str) -> None:
    keys = [f"{prefix}/k{i:04d}" for i in range(1003)]
    put_many(resources, keys)

    default = list_page(resources, f"{prefix}/")
    assert [r.key for r in default.resources] == keys[:100]
    assert default.next_page_token

    big = list_page(resources, f"{prefix}/", page_size=5000)
    assert [r.key for r in big.resources] == keys[:1000]
    assert big.next_page_token
    rest = list_page(resources, f"{prefix}/", page_size=5000, page_token=big.next_page_token)
    assert [r.key for r in rest.resources] == keys[1000:]
    assert rest.next_page_token == ""


def test_basic_view_omits_values_and_full_view_includes_them(resources: Stub, prefix: str) -> None:
    a = create(resources, f"{prefix}/a", b"value-a", content_type="text/plain")
    b = create(resources, f"{prefix}/b", b"value-b")

    for view in (0, BASIC):
        listed = list_page(resources, f"{prefix}/", view=view).resources
        assert [r.value for r in listed] == [b"", b""]
        # Everything but the value is there.
        for got, want in zip(listed, (a, b), strict=True):
            expected = resource_pb2.Resource()
            expected.CopyFrom(want)
            expected.value = b""
            assert got == expected
        versions = list_versions(resources, f"{prefix}/a", view=view).versions
        assert [(v.version, v.value) for v in versions] == [(1, b"")]
    assert list(list_page(resources, f"{prefix}/", view=FULL).resources) == [a, b]
    assert list(list_versions(resources, f"{prefix}/a", view=FULL).versions) == [a]


def test_unknown_view_is_invalid_argument(resources: Stub, prefix: str) -> None:
    failure = expect_failure(
        resources.ListResources,
        resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", view=7),  # type: ignore[arg-type]
        INVALID,
        "INVALID_ARGUMENT",
    )
    assert failure.metadata == {"field": "view"}


def test_list_versions_newest_first_with_pages(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    written = [create(resources, key, b"v1")]
    for n in range(2, 6):
        written.append(update(resources, key, f"v{n}".encode()))
    newest_first = list(reversed(written))

    assert list(list_versions(resources, key, view=FULL).versions) == newest_first

    seen: list[resource_pb2.Resource] = []
    token = ""
    pages = 0
    for _ in range(10):
        reply = list_versions(resources, key, page_size=2, page_token=token, view=FULL)
        pages += 1
        seen.extend(reply.versions)
        token = reply.next_page_token
        if not token:
            break
    assert seen == newest_first
    assert pages == 3


def test_list_versions_page_token_of_another_key_is_invalid(resources: Stub, prefix: str) -> None:
    for name in ("a", "b"):
        create(resources, f"{prefix}/{name}", b"1")
        update(resources, f"{prefix}/{name}", b"2")
    token = list_versions(resources, f"{prefix}/a", page_size=1).next_page_token
    assert token
    expect_failure(
        resources.ListResourceVersions,
        resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/b", page_size=1, page_token=token),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )


def test_list_versions_of_a_missing_key_is_not_found(resources: Stub, prefix: str) -> None:
    failure = expect_failure(
        resources.ListResourceVersions,
        resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/missing"),
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert failure.metadata == {"key": f"{prefix}/missing"}


def test_history_retention_is_configurable(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory(extra_args=["--history-versions", "3"]).start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        key = f"{prefix}/k"
        written = [create(resources, key, b"v1")]
        for n in range(2, 7):
            written.append(update(resources, key, f"v{n}".encode()))

        versions = list_versions(resources, key, view=FULL).versions
        assert list(versions) == [written[5], written[4], written[3]]
        for n in (4, 5, 6):
            assert get(resources, key, version=n) == written[n - 1]
        for n in (1, 2, 3):
            failure = expect_failure(
                resources.GetResource,
                resource_pb2.GetResourceRequest(key=key, version=n),
                grpc.StatusCode.NOT_FOUND,
                "VERSION_NOT_FOUND",
            )
            assert failure.metadata == {"key": key, "version": str(n), "current_version": "6"}
            assert "3" in failure.message
            detail = conflict_of(failure)
            assert detail.current_version == 6
            assert_conflict_is(detail, key, written[5], f"version {n}")


def test_default_history_keeps_the_last_10_versions(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/k"
    written = [create(resources, key, b"v1")]
    for n in range(2, 13):
        written.append(update(resources, key, f"v{n}".encode()))

    versions = list_versions(resources, key, view=FULL).versions
    assert [v.version for v in versions] == list(range(12, 2, -1))
    assert list(versions) == list(reversed(written[2:]))
    assert get(resources, key, version=3) == written[2]
    for n in (1, 2):
        failure = expect_failure(
            resources.GetResource,
            resource_pb2.GetResourceRequest(key=key, version=n),
            grpc.StatusCode.NOT_FOUND,
            "VERSION_NOT_FOUND",
        )
        assert conflict_of(failure).current_version == 12


def test_an_empty_prefix_lists_every_key_in_order(server_factory: ServerFactory) -> None:
    server = server_factory().start()
    with grpc.insecure_channel(server.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        for key in ("b/2", "a", "b/1", "c"):
            stub.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"x"), timeout=10)
        first = stub.ListResources(resource_pb2.ListResourcesRequest(page_size=3), timeout=10)
        assert [r.key for r in first.resources] == ["a", "b/1", "b/2"]
        rest = stub.ListResources(
            resource_pb2.ListResourcesRequest(page_size=3, page_token=first.next_page_token), timeout=10
        )
        assert ([r.key for r in rest.resources], rest.next_page_token) == (["c"], "")


_URLSAFE_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def _old_style_token(cursor: object, query: str) -> str:
    """A token as the unsigned format built them: anyone could compute its query digest."""
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    payload = json.dumps({"q": digest, "c": cursor}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _nested_token(depth: int) -> str:
    return base64.urlsafe_b64encode(b'{"q":' * depth + b"1" + b"}" * depth).decode()


@pytest.mark.parametrize(
    "cursor",
    [2**63, 2**64 + 5, -(2**63) - 1, "\ud800", "a\x00b", True, False, None, 1.5, [1], {"c": 1}],
    ids=lambda c: repr(c)[:20],
)
def test_forged_page_tokens_are_invalid_page_token_never_internal(
    resources: Stub, prefix: str, cursor: object
) -> None:
    """Cursors out of int64, lone surrogates, NUL, booleans and other types in a token computed
    as the unsigned format allowed: INVALID_PAGE_TOKEN, never INTERNAL (issue #14, item 3)."""
    create(resources, f"{prefix}/a", b"x")
    current = get(resources, f"{prefix}/a")
    history = f"ListResourceVersions\x00{prefix}/a\x00{current.create_revision}"
    calls: list[tuple[Any, Any]] = [
        (resources.ListResources, resource_pb2.ListResourcesRequest(prefix=f"{prefix}/")),
        (resources.ListResourceVersions, resource_pb2.ListResourceVersionsRequest(key=f"{prefix}/a")),
    ]
    for (call, request), query in zip(calls, [f"ListResources\x00{prefix}/", history], strict=True):
        request.page_token = _old_style_token(cursor, query)
        failure = expect_failure(call, request, INVALID, "INVALID_PAGE_TOKEN")
        assert failure.metadata == {"field": "page_token"}


@pytest.mark.parametrize("token", [_nested_token(100_000), "A" * 100_000, "%00", "é"])
def test_deeply_nested_huge_or_odd_tokens_are_invalid_page_token(
    resources: Stub, prefix: str, token: str
) -> None:
    create(resources, f"{prefix}/a", b"x")
    request = resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_token=token)
    failure = expect_failure(resources.ListResources, request, INVALID, "INVALID_PAGE_TOKEN")
    assert failure.metadata == {"field": "page_token"}


def test_edited_page_token_is_invalid_page_token(resources: Stub, prefix: str) -> None:
    """A token is tamper-evident: changing any character of it makes it invalid."""
    for i in range(3):
        create(resources, f"{prefix}/k{i}", b"x")
    token = list_page(resources, f"{prefix}/", page_size=1).next_page_token
    assert [r.key for r in list_page(resources, f"{prefix}/", 1, token).resources] == [f"{prefix}/k1"]
    for position in range(len(token)):
        # Flip the top bit of the character: always a data bit, even in the last character.
        replacement = _URLSAFE_ALPHABET[_URLSAFE_ALPHABET.index(token[position]) ^ 32]
        edited = token[:position] + replacement + token[position + 1 :]
        failure = expect_failure(
            resources.ListResources,
            resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=1, page_token=edited),
            INVALID,
            "INVALID_PAGE_TOKEN",
        )
        assert failure.metadata == {"field": "page_token"}


def test_page_token_of_another_store_is_invalid_page_token(server_factory: ServerFactory) -> None:
    """Each store signs its tokens with its own secret; a restart keeps it."""
    first, second = server_factory(name="first").start(), server_factory(name="second").start()
    tokens = []
    for server in (first, second):
        with grpc.insecure_channel(server.address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            for key in ("p/a", "p/b"):
                stub.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"x"), timeout=10)
            tokens.append(list_page(stub, "p/", page_size=1).next_page_token)
    assert tokens[0] != tokens[1]
    with grpc.insecure_channel(second.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        failure = expect_failure(
            stub.ListResources,
            resource_pb2.ListResourcesRequest(prefix="p/", page_size=1, page_token=tokens[0]),
            INVALID,
            "INVALID_PAGE_TOKEN",
        )
        assert failure.metadata == {"field": "page_token"}
    first.stop()
    first.start()
    with grpc.insecure_channel(first.address) as channel:
        stub = resource_pb2_grpc.ResourceServiceStub(channel)
        assert [r.key for r in list_page(stub, "p/", 1, tokens[0]).resources] == ["p/b"]
