"""Leases: grant, refresh, revoke and read, the entry points of LeaseService.

A lease is live until its deadline (`lifetime`); revoking it ends it and all that hangs on it
(`end`); refreshing it moves its deadline to a full TTL from now, and cannot revive a dead one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lockservice.codec import decode_lease, decode_lease_ended, encode_lease, encode_lease_ended
from lockservice.core import requests as rq
from lockservice.core.idempotency import Answer, Once, write_once
from lockservice.core.leases.end import end_lease
from lockservice.core.leases.grant import check_lease_capacity, check_ttl, grant_in
from lockservice.core.leases.lifetime import is_live, lease_not_found, live_lease, require_live_lease
from lockservice.core.leases.listing import LeasePage, list_leases
from lockservice.core.limits import Limits
from lockservice.core.ownership import check_lease_owner, owner_tag
from lockservice.core.validation import check_holder, check_lease_id, check_request_id
from lockservice.model import Lease, LeaseEnded, LeaseView
from lockservice.store.base import Store, WriteTxn

__all__ = ["Leases"]

_LEASE = Answer(encode_lease, decode_lease)
_LEASE_ENDED = Answer(encode_lease_ended, decode_lease_ended)


class Leases:
    """The rules of leases over a `Store`. `on_new_deadline` is called after each grant: the new
    lease's deadline may come before any the expiry task is sleeping towards."""

    def __init__(
        self, store: Store, limits: Limits, on_new_deadline: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self._limits = limits
        self._on_new_deadline = on_new_deadline

    async def grant(self, req: rq.GrantLease) -> Lease:
        check_ttl(req.ttl_seconds, self._limits)
        check_holder(req.holder)
        check_request_id(req.request_id, self._limits)
        lease = await write_once(
            self._store, Once.of("GrantLease", req), lambda txn: self._grant_in(txn, req), _LEASE
        )
        self._on_new_deadline()
        return lease

    def _grant_in(self, txn: WriteTxn, req: rq.GrantLease) -> Lease:
        check_lease_capacity(txn, self._limits)
        return grant_in(txn, req.ttl_seconds, req.holder, owner_tag=owner_tag(req.owner))

    def _check_named_lease(self, req: rq.RefreshLease | rq.RevokeLease) -> None:
        """A lease id of the right shape, owned by the caller; a request_id of the right shape."""
        check_lease_id(req.lease_id)
        check_lease_owner(req.lease_id, req.owner)
        check_request_id(req.request_id, self._limits)

    async def refresh(self, req: rq.RefreshLease) -> Lease:
        """Extends the lease to its full TTL from now. An expired lease cannot be revived."""
        self._check_named_lease(req)

        def run(txn: WriteTxn) -> Lease:
            lease = require_live_lease(txn, req.lease_id)
            refreshed = replace(lease, expire_time_us=txn.now_us + lease.ttl_seconds * 1_000_000)
            txn.put_lease(refreshed)
            return refreshed

        # A retry with the request_id is the same refresh: it gets the first answer and does not
        # extend the lease again (KeepAlive, and a refresh with a new or no request_id, do).
        return await write_once(self._store, Once.of("RefreshLease", req), run, _LEASE)

    async def revoke(self, req: rq.RevokeLease) -> LeaseEnded:
        """Ends the lease now, with its locks, waiters and resources (`end`)."""
        self._check_named_lease(req)

        def run(txn: WriteTxn) -> LeaseEnded:
            lease = live_lease(txn, req.lease_id)
            if lease is None:
                raise lease_not_found(req.lease_id)
            return end_lease(txn, lease, expired=False)

        return await write_once(self._store, Once.of("RevokeLease", req), run, _LEASE_ENDED)

    async def list(self, req: rq.ListLeases) -> LeasePage:
        """A page of ListLeases (`listing`): the caller's own live leases."""
        return await list_leases(self._store, self._limits, req)

    async def get(self, lease_id: str, owner: str | None = None) -> LeaseView:
        check_lease_id(lease_id)
        check_lease_owner(lease_id, owner)
        lease = await self._store.get_lease(lease_id)
        now = self._store.now_us()
        if lease is None or not is_live(lease, now):
            raise lease_not_found(lease_id)
        return LeaseView(
            lease=lease,
            remaining_ms=(lease.expire_time_us - now) // 1000,
            lock_names=tuple(await self._store.lease_lock_names(lease_id)),
            resource_keys=tuple(await self._store.lease_resource_keys(lease_id)),
        )
