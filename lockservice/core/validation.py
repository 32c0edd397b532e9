"""Rules about what a key, a value and a request id may be. Messages name the limit broken."""

from __future__ import annotations

import re

from lockservice.core.limits import Limits
from lockservice.errors import InvalidArgument, InvalidKey, InvalidRequestId, ValueTooLarge
from lockservice.model import MAX_ETAG_CHARS

__all__ = [
    "KEY_ALPHABET",
    "check_content_type",
    "check_etag",
    "check_holder",
    "check_key",
    "check_lease_id",
    "check_prefix",
    "check_request_id",
    "check_value",
]

# URL-path-safe without escaping (keys appear in HTTP paths), `/` for hierarchy.
KEY_ALPHABET = "A-Z a-z 0-9 - . _ ~ / : @ + = , !"
_KEY_CHARS = re.compile(r"[A-Za-z0-9\-._~/:@+=,!]*")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


def check_key(key: str, limits: Limits, *, field: str = "key") -> None:
    if not key:
        raise InvalidKey(f"{field} is empty", metadata={"field": field})
    size = len(key.encode("utf-8"))
    if size > limits.max_key_bytes:
        raise InvalidKey(
            f"{field} is {size} bytes; the limit is {limits.max_key_bytes} bytes",
            metadata={"field": field, "limit": str(limits.max_key_bytes)},
        )
    _check_key_syntax(key, field)
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"{field} must not start or end with '/'", metadata={"field": field})
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKey(
            f"{field} must not contain an empty, '.' or '..' path segment", metadata={"field": field}
        )


def check_prefix(prefix: str, limits: Limits, *, field: str = "prefix") -> None:
    """A prefix is any start of a valid key (so it may end with '/'), or empty."""
    size = len(prefix.encode("utf-8"))
    if size > limits.max_key_bytes:
        raise InvalidKey(
            f"{field} is {size} bytes; the limit is {limits.max_key_bytes} bytes",
            metadata={"field": field, "limit": str(limits.max_key_bytes)},
        )
    _check_key_syntax(prefix, field)


def _check_key_syntax(key: str, field: str) -> None:
    if _KEY_CHARS.fullmatch(key) is None:
        raise InvalidKey(
            f"{field} may only contain the characters {KEY_ALPHABET}",
            metadata={"field": field, "alphabet": KEY_ALPHABET},
        )


def check_value(value: bytes, limits: Limits, *, field: str = "value") -> None:
    if len(value) > limits.max_value_bytes:
        raise ValueTooLarge(
            f"{field} is {len(value)} bytes; the limit is {limits.max_value_bytes} bytes",
            metadata={"field": field, "limit": str(limits.max_value_bytes)},
        )


def check_content_type(content_type: str, *, field: str = "content_type") -> None:
    if content_type and (
        len(content_type) > 255 or _PRINTABLE_ASCII.fullmatch(content_type.replace(" ", "!")) is None
    ):
        raise InvalidArgument(
            f"{field} must be at most 255 printable ASCII characters", metadata={"field": field}
        )


def check_etag(etag: str, *, field: str) -> None:
    """An expected etag: refused when longer than any the server issues (it could never match,
    and it would be echoed into the conflict)."""
    if len(etag) > MAX_ETAG_CHARS or not etag.isascii() or not etag.isprintable():
        raise InvalidArgument(
            f"{field} must be at most {MAX_ETAG_CHARS} printable ASCII characters, an etag as the "
            'server issued it (such as "12.3")',
            metadata={"field": field, "limit": str(MAX_ETAG_CHARS)},
        )


def check_request_id(request_id: str, limits: Limits) -> None:
    """Empty means "no idempotency"; otherwise 1..max printable ASCII characters, no spaces."""
    if not request_id:
        return
    if len(request_id) > limits.max_request_id_chars or _PRINTABLE_ASCII.fullmatch(request_id) is None:
        raise InvalidRequestId(
            f"request_id must be 1 to {limits.max_request_id_chars} printable ASCII characters "
            "without spaces (a UUID is ideal)",
            metadata={"field": "request_id", "limit": str(limits.max_request_id_chars)},
        )


# 32 hex digits, after a 16-digit owner tag when authentication is on (core.ownership).
_LEASE_ID = re.compile(r"(?:[0-9a-f]{16})?[0-9a-f]{32}")


def check_lease_id(lease_id: str, *, field: str = "lease_id") -> None:
    if _LEASE_ID.fullmatch(lease_id) is None:
        raise InvalidArgument(
            f"{field} must be a lease id as GrantLease returns it (32 or 48 hex digits)",
            metadata={"field": field},
        )


def check_holder(holder: str, *, field: str = "holder") -> None:
    """Free text for humans (a host, a pod, a job id), bounded so it cannot bloat every lock row."""
    if len(holder) > 256 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in holder):
        raise InvalidArgument(
            f"{field} must be at most 256 characters without control characters", metadata={"field": field}
        )
