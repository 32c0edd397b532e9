"""Opaque AIP-158 page tokens, bound to the query that produced them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from lockservice.core.limits import Limits
from lockservice.errors import InvalidArgument, InvalidPageToken

__all__ = ["decode_page_token", "encode_page_token", "page_size"]


def _query_digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_page_token(query: str, cursor: str | int) -> str:
    payload = json.dumps({"q": _query_digest(query), "c": cursor}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


def decode_page_token(token: str, query: str, cursor_type: type[str] | type[int]) -> str | int | None:
    """The cursor of `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidPageToken("page_token is malformed", metadata={"field": "page_token"}) from None
    if not isinstance(data, dict) or not isinstance(data.get("c"), cursor_type):
        raise InvalidPageToken("page_token is malformed", metadata={"field": "page_token"})
    if data.get("q") != _query_digest(query):
        raise InvalidPageToken(
            "page_token belongs to another query; repeat the query's other fields unchanged",
            metadata={"field": "page_token"},
        )
    cursor: str | int = data["c"]
    return cursor


def page_size(requested: int, limits: Limits) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", metadata={"field": "page_size"})
    if requested == 0:
        return limits.default_page_size
    return min(requested, limits.max_page_size)
