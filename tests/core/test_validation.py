from __future__ import annotations

import pytest

from lockservice.core.limits import Limits
from lockservice.core.validation import check_key, check_prefix, check_request_id, check_value
from lockservice.errors import InvalidKey, InvalidRequestId, ValueTooLarge

LIMITS = Limits()


@pytest.mark.parametrize(
    "key", ["a", "orders/42", "a-b.c_d~e/f:g@h+i=j,k!l", "x" * 512, "tenant/app/config.json"]
)
def test_valid_keys(key: str) -> None:
    check_key(key, LIMITS)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "key is empty"),
        ("x" * 513, "key is 513 bytes; the limit is 512 bytes"),
        ("has space", "key may only contain the characters"),
        ("caf\u00e9", "key may only contain the characters"),
        ("a?b", "key may only contain the characters"),
        ("a%2Fb", "key may only contain the characters"),
        ("/lead", "key must not start or end with '/'"),
        ("trail/", "key must not start or end with '/'"),
        ("a//b", "key must not contain an empty, '.' or '..' path segment"),
        ("a/./b", "key must not contain an empty, '.' or '..' path segment"),
        ("a/../b", "key must not contain an empty, '.' or '..' path segment"),
        ("..", "key must not contain an empty, '.' or '..' path segment"),
    ],
)
def test_invalid_keys_name_the_rule(key: str, message: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        check_key(key, LIMITS)
    assert caught.value.message.startswith(message)
    assert caught.value.metadata["field"] == "key"


def test_key_limit_is_configurable() -> None:
    check_key("x" * 16, Limits(max_key_bytes=16))
    with pytest.raises(InvalidKey, match="key is 17 bytes; the limit is 16 bytes"):
        check_key("x" * 17, Limits(max_key_bytes=16))


def test_prefix_may_end_with_a_slash_or_be_empty() -> None:
    check_prefix("", LIMITS)
    check_prefix("orders/", LIMITS)
    with pytest.raises(InvalidKey):
        check_prefix("bad prefix", LIMITS)


def test_value_limit_names_the_limit() -> None:
    check_value(b"x" * 1024, Limits(max_value_bytes=1024))
    with pytest.raises(ValueTooLarge) as caught:
        check_value(b"x" * 1025, Limits(max_value_bytes=1024))
    assert caught.value.message == "value is 1025 bytes; the limit is 1024 bytes"
    assert caught.value.metadata == {"field": "value", "limit": "1024"}


@pytest.mark.parametrize("request_id", ["", "0b5e3f3c-7c1e-4a36-9d1b-8f9f0a7d2c11", "x" * 128])
def test_valid_request_ids(request_id: str) -> None:
    check_request_id(request_id, LIMITS)


@pytest.mark.parametrize("request_id", ["x" * 129, "has space", "tab\t", "caf\u00e9"])
def test_invalid_request_ids(request_id: str) -> None:
    with pytest.raises(InvalidRequestId, match="request_id must be 1 to 128 printable ASCII"):
        check_request_id(request_id, LIMITS)
