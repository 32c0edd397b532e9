"""Who owns a lease: the identity that was authenticated when it was granted.

The owner is bound into the lease id itself, so ownership needs no column, no lookup and no
secret: an id minted for an identity starts with that identity's owner tag (16 hex digits of a
SHA-256 of the identity) and ends with 128 random bits. Ownership is then a pure check on the
id a request names, made before any store access, and it cannot be forged: a caller cannot
choose its authenticated identity, and a tag names no one else (2**64 tags).

With authentication off there is no identity (`None`): ids carry no tag and every check passes.
A lease granted while authentication was off belongs to no identity once it is turned on, and
simply runs out.

A lock belongs to whoever owns the lease that holds it. A caller queued for a lock with a lease
made for it (`ttl_seconds`) gets its waiter id minted the same way, so the lease made at the
hand-over belongs to the waiter's identity, on any replica.
"""

from __future__ import annotations

import hashlib
import secrets

from lockservice.errors import PermissionDenied

__all__ = [
    "check_lease_owner",
    "mint_lease_id",
    "mint_waiter_id",
    "owner_tag",
    "owns_lease",
    "waiter_owner_tag",
]

_TAG_DIGITS = 16
_LEASE_RANDOM_DIGITS = 32  # 128 bits: a lease id is never guessable
_WAITER_RANDOM_DIGITS = 24


def owner_tag(identity: str | None) -> str:
    """The prefix of every id minted for `identity`; empty without authentication."""
    if identity is None:
        return ""
    return hashlib.sha256(b"lockservice owner\x00" + identity.encode()).hexdigest()[:_TAG_DIGITS]


def mint_lease_id(tag: str) -> str:
    return tag + secrets.token_hex(_LEASE_RANDOM_DIGITS // 2)


def mint_waiter_id(identity: str | None) -> str:
    return owner_tag(identity) + secrets.token_hex(_WAITER_RANDOM_DIGITS // 2)


def waiter_owner_tag(waiter_id: str) -> str:
    """The owner tag a waiter id was minted with ("" for a waiter without an identity)."""
    return waiter_id[:-_WAITER_RANDOM_DIGITS]


def owns_lease(lease_id: str, identity: str | None) -> bool:
    if identity is None:
        return True
    return lease_id[:-_LEASE_RANDOM_DIGITS] == owner_tag(identity)


def check_lease_owner(lease_id: str, identity: str | None, *, field: str = "lease_id") -> None:
    """PERMISSION_DENIED unless `identity` owns the lease `lease_id` (always fine without auth).

    Checked before the lease is looked up, so a caller learns nothing about others' leases."""
    if not owns_lease(lease_id, identity):
        raise PermissionDenied(
            f"lease {lease_id} belongs to another identity; only the identity that was granted a "
            "lease may refresh, revoke, read or use it",
            metadata={"field": field, "lease_id": lease_id},
        )
