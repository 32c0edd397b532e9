"""Authorization: which identity may read, write or lock under which key prefixes.

A policy is a list of grants `(identity, prefix, rights)`. An identity may do `right` on a key
when one of its grants (or of the grants to `*`, every authenticated identity) has that right
and a prefix the key starts with. Prefixes are plain string prefixes, so end a namespace with
`/`: the grant `orders/` covers `orders/42` but not `orders-archive/1`; the prefix "" covers
every key. Lock names share the key namespace.

A request over a range of keys (a list or a watch of a prefix) needs a grant that covers the
whole range: its prefix must start with the grant's prefix.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from lockservice.errors import PermissionDenied

__all__ = ["ANY_IDENTITY", "AccessPolicy", "Grant", "Right"]

ANY_IDENTITY = "*"


class Right(enum.Enum):
    READ = "read"  # get, list, watch resources; read locks
    WRITE = "write"  # create, update, delete, compare-and-set, transact
    LOCK = "lock"  # acquire and release locks


@dataclass(frozen=True, slots=True)
class Grant:
    identity: str
    prefix: str
    rights: frozenset[Right]


class AccessPolicy:
    """The authorization table. Immutable once built; checks are a scan of one identity's grants."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self.grants = tuple(grants)
        by_identity: dict[str, list[tuple[str, frozenset[Right]]]] = {}
        for grant in self.grants:
            by_identity.setdefault(grant.identity, []).append((grant.prefix, grant.rights))
        everyone = by_identity.get(ANY_IDENTITY, [])
        self._by_identity = {
            identity: tuple(own + everyone if identity != ANY_IDENTITY else own)
            for identity, own in by_identity.items()
        }
        self._everyone = tuple(everyone)

    def allows(self, identity: str, right: Right, key: str) -> bool:
        for prefix, rights in self._by_identity.get(identity, self._everyone):
            if right in rights and key.startswith(prefix):
                return True
        return False

    def check(self, identity: str, right: Right, key: str, *, whole_prefix: bool = False) -> None:
        """PERMISSION_DENIED unless `identity` has `right` on `key` (on every key starting with
        `key` when `whole_prefix`: the same test, since grants are prefixes)."""
        if not self.allows(identity, right, key):
            shown = _shown(key)
            scope = f"the keys under {shown!r}" if whole_prefix else repr(shown)
            raise PermissionDenied(
                f"identity {identity!r} has no {right.value} right on {scope}",
                metadata={"identity": identity, "right": right.value, "key": shown},
            )


# A refusal names the key in its message and metadata, which travel in gRPC trailers (8 KiB in
# all): a key longer than any valid one is named by its start. (Authorization runs before a key
# is validated, so the key may be any length the request could carry.)
_SHOWN_KEY_BYTES = 1024


def _shown(key: str) -> str:
    return key if len(key.encode("utf-8", "surrogatepass")) <= _SHOWN_KEY_BYTES else f"{key[:64]}..."
