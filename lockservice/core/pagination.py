"""Opaque, tamper-evident AIP-158 page tokens, bound to the store and the query that made them.

A token is URL-safe base64 (no padding) of:

    version (1 byte) | query tag (4 bytes) | cursor | MAC (16 bytes)

The cursor is `s` + the UTF-8 key to resume after, or `i` + a signed 64-bit big-endian version.
The MAC is HMAC-SHA-256 (truncated to 128 bits) under the store's own secret (kept in the
database, so every replica of one store shares it) over the query and everything before it: a
token from another store, another query, or with any byte changed is refused before its cursor
is even read. The query tag (derived from the secret too) only tells "another query" apart from
"not a token of ours" in the message. `page_size` is not part of the query: AIP-158 lets a
client change it between pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TypeVar

from lockservice.core.limits import Limits
from lockservice.errors import InvalidArgument, InvalidPageToken

__all__ = [
    "MAX_PAGE_TOKEN_CHARS",
    "decode_page_token",
    "encode_page_token",
    "page_size",
    "rows_within_bytes",
]

T = TypeVar("T")

_VERSION = b"\x01"
_TAG_BYTES = 4
_MAC_BYTES = 16
_INT_BYTES = 8
# A key cursor is a key (at most Limits.max_key_bytes; 4 KiB covers any configured limit).
_MAX_CURSOR_BYTES = 4096
MAX_PAGE_TOKEN_CHARS = (1 + _TAG_BYTES + 1 + _MAX_CURSOR_BYTES + _MAC_BYTES) * 4 // 3 + 4
_FIELD = {"field": "page_token"}


def _mac(secret: bytes, purpose: bytes, query: str, data: bytes) -> bytes:
    message = purpose + b"\x00" + query.encode() + b"\x00" + data
    return hmac.new(secret, message, hashlib.sha256).digest()


def _query_tag(secret: bytes, query: str) -> bytes:
    return _mac(secret, b"page-token-query", query, b"")[:_TAG_BYTES]


def encode_page_token(secret: bytes, query: str, cursor: str | int) -> str:
    if isinstance(cursor, str):
        body = b"s" + cursor.encode("utf-8")
    else:
        body = b"i" + cursor.to_bytes(_INT_BYTES, "big", signed=True)
    signed = _VERSION + _query_tag(secret, query) + body
    token = signed + _mac(secret, b"page-token", query, signed)[:_MAC_BYTES]
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def _malformed() -> InvalidPageToken:
    return InvalidPageToken(
        "page_token is not a token this server issued (or it was changed); start again without one",
        metadata=_FIELD,
    )


def _token_bytes(token: str) -> bytes:
    if len(token) > MAX_PAGE_TOKEN_CHARS or not token.isascii():
        raise _malformed()
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        raise _malformed() from None


def decode_page_token(
    secret: bytes, token: str, query: str, cursor_type: type[str] | type[int]
) -> str | int | None:
    """The cursor of `token`, or None for an empty token (the first page). Anything but an
    unchanged token this store issued for this query is INVALID_PAGE_TOKEN."""
    if not token:
        return None
    data = _token_bytes(token)
    if len(data) < 1 + _TAG_BYTES + 1 + _MAC_BYTES or data[:1] != _VERSION:
        raise _malformed()
    signed, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    if not hmac.compare_digest(_query_tag(secret, query), signed[1 : 1 + _TAG_BYTES]):
        raise InvalidPageToken(
            "page_token belongs to another query or another store; repeat the query's other "
            "fields unchanged, or start again without a page_token",
            metadata=_FIELD,
        )
    if not hmac.compare_digest(_mac(secret, b"page-token", query, signed)[:_MAC_BYTES], mac):
        raise _malformed()
    kind, body = signed[1 + _TAG_BYTES : 2 + _TAG_BYTES], signed[2 + _TAG_BYTES :]
    # Issued by us, so well-formed; still checked by type and range before use.
    if cursor_type is str and kind == b"s" and len(body) <= _MAX_CURSOR_BYTES:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed() from None
    if cursor_type is int and kind == b"i" and len(body) == _INT_BYTES:
        return int.from_bytes(body, "big", signed=True)
    raise _malformed()


def page_size(requested: int, limits: Limits) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", metadata={"field": "page_size"})
    if requested == 0:
        return limits.default_page_size
    return min(requested, limits.max_page_size)


def rows_within_bytes(rows: Sequence[T], weigh: Callable[[T], int], max_bytes: int) -> int:
    """How many leading `rows` a reply of `max_bytes` carries, by `weigh` (an upper bound of a
    row's bytes on the wire): at least one, so a page always moves on."""
    total = 0
    for count, row in enumerate(rows):
        total += weigh(row)
        if count and total > max_bytes:
            return count
    return len(rows)
