"""Which right each RPC needs on which keys of its request: the wire side of authorization.

The decision itself is the core's (`lockservice.core.access`); this table only reads the keys
out of each request message. ListLocks needs no right on its prefix: it lists only the locks
the caller may read (the core filters them). Lease calls name no key: they need an authenticated identity, and
the core lets only a lease's owner refresh, revoke, read or use it.

A write's `fence` names a lock and claims to hold it with a token: that is a use of the lock,
so it needs the lock right on the lock's name (the right it takes to acquire the lock, which
every genuine holder has), checked here with the write's own rights, before any state is
examined. Without it the write is PERMISSION_DENIED whatever the token, so its answer says
nothing of a lock the caller may not take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lockservice.core.access import Right

__all__ = ["KEYS_BY_METHOD", "KeyAccess", "required_access"]

# (right, key, whole_prefix): `whole_prefix` when the call reaches every key under `key`.
KeyAccess = tuple[Right, str, bool]


def _read_key(m: Any) -> Iterator[KeyAccess]:
    yield Right.READ, m.key, False


def _write_key(m: Any) -> Iterator[KeyAccess]:
    yield Right.WRITE, m.key, False


def _fence(m: Any) -> Iterator[KeyAccess]:
    if m.HasField("fence"):
        yield Right.LOCK, m.fence.lock_name, False


def _fenced_write_key(m: Any) -> Iterator[KeyAccess]:
    yield from _write_key(m)
    yield from _fence(m)


def _read_name(m: Any) -> Iterator[KeyAccess]:
    yield Right.READ, m.name, False


def _lock_name(m: Any) -> Iterator[KeyAccess]:
    yield Right.LOCK, m.name, False


def _list(m: Any) -> Iterator[KeyAccess]:
    yield Right.READ, m.prefix, True


def _watch(m: Any) -> Iterator[KeyAccess]:
    yield Right.READ, m.key, bool(m.prefix)


def _transact(m: Any) -> Iterator[KeyAccess]:
    for compare in m.compares:
        yield Right.READ, compare.key, False
    for operation in m.operations:
        key = operation.put.key if operation.HasField("put") else operation.delete.key
        yield Right.WRITE, key, False
    yield from _fence(m)


def _none(m: Any) -> Iterator[KeyAccess]:
    return iter(())


KEYS_BY_METHOD: dict[str, Callable[[Any], Iterator[KeyAccess]]] = {
    "CreateResource": _write_key,
    "GetResource": _read_key,
    "UpdateResource": _fenced_write_key,
    "DeleteResource": _fenced_write_key,
    "ListResources": _list,
    "ListResourceVersions": _read_key,
    "CompareAndSet": _fenced_write_key,
    "Transact": _transact,
    "Watch": _watch,
    "GrantLease": _none,
    "KeepAlive": _none,
    "RefreshLease": _none,
    "RevokeLease": _none,
    "GetLease": _none,
    "ListLeases": _none,
    "AcquireLock": _lock_name,
    "ReleaseLock": _lock_name,
    "GetLock": _read_name,
    # Filtered by the caller's rights lock by lock (`Visibility.listed`), not refused.
    "ListLocks": _none,
}


def required_access(method: str, request: Any) -> Iterator[KeyAccess]:
    """What `request` to `method` needs. An unlisted method is a programming error (KeyError),
    caught by the completeness test, never a silent allow."""
    return KEYS_BY_METHOD[method](request)
