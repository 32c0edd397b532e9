"""The authorization table: rights by identity and key prefix, "*" for every identity."""

from __future__ import annotations

import pytest

from lockservice.core.access import AccessPolicy, Grant, Right
from lockservice.errors import PermissionDenied

POLICY = AccessPolicy(
    [
        Grant("alice", "orders/", frozenset({Right.READ, Right.WRITE})),
        Grant("alice", "locks/", frozenset({Right.LOCK})),
        Grant("*", "public/", frozenset({Right.READ})),
        Grant("root", "", frozenset(Right)),
    ]
)


@pytest.mark.parametrize(
    ("identity", "right", "key", "allowed"),
    [
        ("alice", Right.WRITE, "orders/42", True),
        ("alice", Right.READ, "orders/", True),
        ("alice", Right.LOCK, "orders/42", False),
        ("alice", Right.WRITE, "orders-archive/1", False),  # a prefix is a string prefix
        ("alice", Right.LOCK, "locks/nightly", True),
        ("alice", Right.READ, "public/x", True),  # the grant to "*" adds to her own
        ("bob", Right.READ, "public/x", True),  # an identity without grants of its own
        ("bob", Right.WRITE, "public/x", False),
        ("bob", Right.READ, "orders/42", False),
        ("root", Right.LOCK, "anything/at/all", True),
    ],
)
def test_allows(identity: str, right: Right, key: str, allowed: bool) -> None:
    assert POLICY.allows(identity, right, key) is allowed


def test_a_prefix_request_needs_a_grant_covering_the_whole_range() -> None:
    assert POLICY.allows("alice", Right.READ, "orders/")
    assert not POLICY.allows("alice", Right.READ, "orders")  # would include orders-archive/
    assert not POLICY.allows("alice", Right.READ, "")
    with pytest.raises(PermissionDenied) as caught:
        POLICY.check("alice", Right.READ, "", whole_prefix=True)
    assert caught.value.message == "identity 'alice' has no read right on the keys under ''"
    assert caught.value.metadata == {"identity": "alice", "right": "read", "key": ""}


def test_an_empty_policy_denies_everything() -> None:
    with pytest.raises(PermissionDenied) as caught:
        AccessPolicy([]).check("alice", Right.READ, "k")
    assert caught.value.message == "identity 'alice' has no read right on 'k'"


@pytest.mark.parametrize("key", ["\u00e9" * 4097, "a" * 20_000, "orders-archive/" + "x" * 1100])
def test_a_refusal_names_at_most_the_start_of_a_huge_key(key: str) -> None:
    """The key is echoed in the message and ErrorInfo metadata, which travel in gRPC trailers
    (8 KiB): a huge (invalid) key is cut, so the refusal still reaches the client."""
    with pytest.raises(PermissionDenied) as denied:
        POLICY.check("alice", Right.READ, key)
    assert len(str(denied.value).encode()) < 1200
    assert len(denied.value.metadata["key"].encode()) < 1100
    assert denied.value.metadata["key"].startswith(key[:64])
    assert denied.value.metadata["key"].endswith("...")


def test_a_refusal_names_a_valid_key_whole() -> None:
    key = "orders-archive/" + "x" * 1000
    with pytest.raises(PermissionDenied) as denied:
        POLICY.check("alice", Right.READ, key)
    assert denied.value.metadata["key"] == key
    assert repr(key) in str(denied.value)
