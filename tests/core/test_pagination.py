from __future__ import annotations

import pytest

from lockservice.core.limits import Limits
from lockservice.core.pagination import decode_page_token, encode_page_token, page_size
from lockservice.errors import InvalidArgument, InvalidPageToken


def test_token_round_trips_its_cursor() -> None:
    assert decode_page_token(encode_page_token("q", "orders/9"), "q", str) == "orders/9"
    assert decode_page_token(encode_page_token("q", 7), "q", int) == 7
    assert decode_page_token("", "q", str) is None


def test_token_from_another_query_is_refused() -> None:
    token = encode_page_token("ListResources\x00a/", "a/1")
    with pytest.raises(InvalidPageToken, match="belongs to another query"):
        decode_page_token(token, "ListResources\x00b/", str)


@pytest.mark.parametrize("token", ["garbage!", "e30=", "bm90IGpzb24=", encode_page_token("q", 5)])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        decode_page_token(token, "q", str)


def test_page_size_default_cap_and_negative() -> None:
    limits = Limits(default_page_size=100, max_page_size=1000)
    assert page_size(0, limits) == 100
    assert page_size(5, limits) == 5
    assert page_size(5000, limits) == 1000
    with pytest.raises(InvalidArgument, match="page_size must not be negative"):
        page_size(-1, limits)
