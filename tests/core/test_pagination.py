from __future__ import annotations

import base64

import pytest

from lockservice.core.limits import Limits
from lockservice.core.pagination import (
    MAX_PAGE_TOKEN_CHARS,
    decode_page_token,
    encode_page_token,
    page_size,
    rows_within_bytes,
)
from lockservice.errors import InvalidArgument, InvalidPageToken

SECRET = b"s" * 32


def test_token_round_trips_its_cursor() -> None:
    assert decode_page_token(SECRET, encode_page_token(SECRET, "q", "orders/9"), "q", str) == "orders/9"
    assert decode_page_token(SECRET, encode_page_token(SECRET, "q", 7), "q", int) == 7
    assert decode_page_token(SECRET, encode_page_token(SECRET, "q", 2**63 - 1), "q", int) == 2**63 - 1
    assert decode_page_token(SECRET, "", "q", str) is None


def test_token_is_opaque() -> None:
    """Neither the cursor nor the query can be read out of a token."""
    raw = base64.urlsafe_b64decode(encode_page_token(SECRET, "ListResources\x00a/", "a/secret-key") + "==")
    assert b"ListResources" not in raw and b"a/" in raw  # the cursor travels, but only signed
    token = encode_page_token(SECRET, "q", "k")
    assert token.isascii() and "=" not in token


def test_token_from_another_query_is_refused() -> None:
    token = encode_page_token(SECRET, "ListResources\x00a/", "a/1")
    with pytest.raises(InvalidPageToken, match="belongs to another query"):
        decode_page_token(SECRET, token, "ListResources\x00b/", str)


def test_token_of_another_store_is_refused() -> None:
    token = encode_page_token(b"o" * 32, "q", "a/1")
    with pytest.raises(InvalidPageToken, match="another store"):
        decode_page_token(SECRET, token, "q", str)


def test_every_edited_byte_is_refused() -> None:
    raw = bytearray(base64.urlsafe_b64decode(encode_page_token(SECRET, "q", "a/1") + "=="))
    for index in range(len(raw)):
        edited = bytearray(raw)
        edited[index] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(edited)).decode().rstrip("=")
        with pytest.raises(InvalidPageToken):
            decode_page_token(SECRET, token, "q", str)


def test_a_cursor_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidPageToken, match="not a token this server issued"):
        decode_page_token(SECRET, encode_page_token(SECRET, "q", 5), "q", str)
    with pytest.raises(InvalidPageToken, match="not a token this server issued"):
        decode_page_token(SECRET, encode_page_token(SECRET, "q", "a"), "q", int)


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "e30=",
        "bm90IGpzb24=",
        "A" * (MAX_PAGE_TOKEN_CHARS + 1),
        "\ud800",
        "é",
        base64.urlsafe_b64encode(b'{"q":' * 100_000 + b"1" + b"}" * 100_000).decode(),
        "A",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        decode_page_token(SECRET, token, "q", str)


def test_page_size_default_cap_and_negative() -> None:
    limits = Limits(default_page_size=100, max_page_size=1000)
    assert page_size(0, limits) == 100
    assert page_size(5, limits) == 5
    assert page_size(5000, limits) == 1000
    with pytest.raises(InvalidArgument, match="page_size must not be negative"):
        page_size(-1, limits)


@pytest.mark.parametrize(
    ("sizes", "max_bytes", "kept"),
    [
        ([10, 10, 10], 30, 3),  # all fit exactly
        ([10, 10, 10], 25, 2),  # the row that crosses the limit goes to the next page
        ([100, 1], 10, 1),  # one row always makes a page, however large
        ([], 10, 0),
    ],
)
def test_rows_within_bytes_keeps_what_a_reply_carries_and_at_least_one(
    sizes: list[int], max_bytes: int, kept: int
) -> None:
    assert rows_within_bytes(sizes, lambda size: size, max_bytes) == kept
