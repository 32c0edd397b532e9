"""Leases: grant, refresh, revoke, read; and what ending one does.

Ending a lease (expiry or revocation) releases its locks, drops its queued waiters and deletes
its resources in one atomic step; the deletions are EXPIRE events at one new revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lockservice.codec import decode_lease, decode_lease_ended, encode_lease, encode_lease_ended
from lockservice.core import requests as rq
from lockservice.core.handoff import release_in
from lockservice.core.idempotency import fingerprint, run_once
from lockservice.core.leasing import (
    check_lease_capacity,
    check_ttl,
    grant_in,
    lease_not_found,
    live_lease,
    require_live_lease,
)
from lockservice.core.limits import Limits
from lockservice.core.ownership import check_lease_owner, owner_tag
from lockservice.core.validation import check_holder, check_lease_id, check_request_id
from lockservice.model import Lease, LeaseEnded, LeaseView, WaiterFailed
from lockservice.store.base import Store, WriteTxn

__all__ = ["Leases", "end_lease"]


def end_lease(txn: WriteTxn, lease: Lease, *, expired: bool) -> LeaseEnded:
    released = txn.lease_lock_names(lease.lease_id)
    for name in released:
        state = txn.get_lock(name)
        if state is not None and state.held and state.lease_id == lease.lease_id:
            release_in(txn, state, expired=expired)
    for waiter in txn.waiters_under_lease(lease.lease_id):
        txn.remove_waiter(waiter.waiter_id)
        txn.notify(
            WaiterFailed(
                waiter_id=waiter.waiter_id,
                name=waiter.name,
                reason="LEASE_NOT_FOUND",
                message=f"lease {lease.lease_id} ended while waiting for lock {waiter.name}",
            )
        )
    keys = txn.lease_resource_keys(lease.lease_id)
    if keys:
        txn.next_revision()
        for key in keys:
            txn.delete(key, expired=True)
    txn.delete_lease(lease.lease_id)
    return LeaseEnded(
        revision=txn.current_revision(), released_locks=tuple(released), deleted_keys=tuple(keys)
    )


class Leases:
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
        request_print = fingerprint("GrantLease", req)
        lease = await self._store.write(
            lambda txn: run_once(
                txn,
                req,
                request_print,
                lambda: self._grant_in(txn, req),
                encode_lease,
                decode_lease,
            )
        )
        self._on_new_deadline()
        return lease

    def _grant_in(self, txn: WriteTxn, req: rq.GrantLease) -> Lease:
        check_lease_capacity(txn, self._limits)
        return grant_in(txn, req.ttl_seconds, req.holder, owner_tag=owner_tag(req.owner))

    async def refresh(self, req: rq.RefreshLease) -> Lease:
        """Extends the lease to its full TTL from now. An expired lease cannot be revived."""
        check_lease_id(req.lease_id)
        check_lease_owner(req.lease_id, req.owner)
        check_request_id(req.request_id, self._limits)

        request_print = fingerprint("RefreshLease", req)

        def run(txn: WriteTxn) -> Lease:
            lease = require_live_lease(txn, req.lease_id)
            refreshed = replace(lease, expire_time_us=txn.now_us + lease.ttl_seconds * 1_000_000)
            txn.put_lease(refreshed)
            return refreshed

        # A retry with the request_id is the same refresh: it gets the first answer and does not
        # extend the lease again (KeepAlive, and a refresh with a new or no request_id, do).
        return await self._store.write(
            lambda txn: run_once(txn, req, request_print, lambda: run(txn), encode_lease, decode_lease)
        )

    async def revoke(self, req: rq.RevokeLease) -> LeaseEnded:
        check_lease_id(req.lease_id)
        check_lease_owner(req.lease_id, req.owner)
        check_request_id(req.request_id, self._limits)
        request_print = fingerprint("RevokeLease", req)

        def run(txn: WriteTxn) -> LeaseEnded:
            lease = live_lease(txn, req.lease_id)
            if lease is None:
                raise lease_not_found(req.lease_id)
            return end_lease(txn, lease, expired=False)

        return await self._store.write(
            lambda txn: run_once(
                txn,
                req,
                request_print,
                lambda: run(txn),
                encode_lease_ended,
                decode_lease_ended,
            )
        )

    async def get(self, lease_id: str, owner: str | None = None) -> LeaseView:
        check_lease_id(lease_id)
        check_lease_owner(lease_id, owner)
        lease = await self._store.get_lease(lease_id)
        now = self._store.now_us()
        if lease is None or lease.expire_time_us <= now:
            raise lease_not_found(lease_id)
        return LeaseView(
            lease=lease,
            remaining_ms=(lease.expire_time_us - now) // 1000,
            lock_names=tuple(await self._store.lease_lock_names(lease_id)),
            resource_keys=tuple(await self._store.lease_resource_keys(lease_id)),
        )
