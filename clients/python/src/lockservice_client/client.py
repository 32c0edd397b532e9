"""The synchronous client: resources, `update()` on conflict, leases, locks and `lock()`.

Every call has a deadline (the client's `timeout`, 10 s unless set, overridable per call) and
raises a typed `LockserviceError` subclass on failure. A `Client` is thread-safe; several clients
may share one channel (`Client(channel=...)`), which they then do not close.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

import grpc

from lockservice_client import _requests
from lockservice_client._proto import (
    lease_pb2,
    lease_pb2_grpc,
    lock_pb2,
    lock_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)
from lockservice_client.backoff import Backoff
from lockservice_client.channels import Tls, connect
from lockservice_client.errors import (
    LeaseNotFound,
    LockNotFound,
    LockNotHeld,
    LockserviceError,
    ResourceNotFound,
    ValueConflict,
    VersionConflict,
    error_from_rpc,
)
from lockservice_client.held_lock import HeldLock, OnLost, holding
from lockservice_client.keepalive import LeaseKeeper, LeaseSchedule
from lockservice_client.listing import ResourceListing
from lockservice_client.watching import DEFAULT_RECONNECT, Watch, WatchCursor

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_TIMEOUT_SECONDS",
    "UPDATE_CONFLICTS",
    "Client",
    "ListPage",
    "ValueUpdate",
]

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_BACKOFF = Backoff()
# The conflicts `update()` answers by re-reading and re-applying: the key changed (or appeared, or
# vanished) between the read and the conditional write.
UPDATE_CONFLICTS = (VersionConflict, ValueConflict)
# Cleaning up a lock whose lease already ended answers one of these; that is the expected outcome.
GONE_ON_RELEASE = (LockNotHeld, LockNotFound, LeaseNotFound)

ValueUpdate = Callable[[bytes | None], bytes]
Request = TypeVar("Request")
Response = TypeVar("Response")


class ListPage(Protocol):
    """A page of a List call (AIP-158)."""

    next_page_token: str


Page = TypeVar("Page", bound=ListPage)
Item = TypeVar("Item")

_log = logging.getLogger("lockservice_client")


class Client:
    """A client of one lockservice server (or a load-balanced set of replicas)."""

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.Channel | None = None,
        tls: Tls | None = None,
        token: str | None = None,
        call_credentials: grpc.CallCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        holder: str | None = None,
    ) -> None:
        """Connects to `target` (default: LOCKSERVICE_TARGET, else 127.0.0.1:50051), or uses `channel`."""
        self._owns_channel = channel is None
        self.channel = channel or connect(target, tls=tls, token=token, call_credentials=call_credentials)
        self.timeout = timeout
        self.holder = holder or _requests.default_holder()
        self._resources = resource_pb2_grpc.ResourceServiceStub(self.channel)
        self._leases = lease_pb2_grpc.LeaseServiceStub(self.channel)
        self._locks = lock_pb2_grpc.LockServiceStub(self.channel)

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout: float | None,
    ) -> Response:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from error

    # Resources.

    def create(
        self,
        key: str,
        value: bytes,
        *,
        content_type: str = "",
        lease_id: str = "",
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        """Creates `key` at version 1. Raises AlreadyExists (conflict: the current state)."""
        return self._call(
            self._resources.CreateResource,
            _requests.create_resource(key, value, content_type, lease_id),
            timeout,
        )

    def get(self, key: str, *, version: int = 0, timeout: float | None = None) -> resource_pb2.Resource:
        """The latest version, or a retained past `version`. Raises ResourceNotFound, VersionNotFound."""
        request = resource_pb2.GetResourceRequest(key=key, version=version)
        return self._call(self._resources.GetResource, request, timeout)

    def put(
        self,
        key: str,
        value: bytes,
        *,
        expected_version: int | None = None,
        expected_etag: str = "",
        allow_missing: bool = True,
        content_type: str = "",
        fence: lock_pb2.Fence | None = None,
        lease_id: str = "",
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        """Writes `value` (creating the key unless `allow_missing` is false), only if the key is
        still at `expected_version` / `expected_etag` when given. Raises VersionConflict, StaleFence."""
        request = _requests.update_resource(
            key,
            value,
            content_type=content_type,
            expected_version=expected_version,
            expected_etag=expected_etag,
            allow_missing=allow_missing,
            fence=fence,
            lease_id=lease_id,
        )
        return self._call(self._resources.UpdateResource, request, timeout)

    def delete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        expected_etag: str = "",
        allow_missing: bool = False,
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.DeleteResourceResponse:
        """Deletes `key`. Raises ResourceNotFound (unless `allow_missing`), VersionConflict, StaleFence."""
        request = _requests.delete_resource(
            key,
            expected_version=expected_version,
            expected_etag=expected_etag,
            allow_missing=allow_missing,
            fence=fence,
        )
        return self._call(self._resources.DeleteResource, request, timeout)

    def compare_and_set(
        self,
        key: str,
        value: bytes,
        *,
        expected_version: int | None = None,
        expected_etag: str | None = None,
        expected_value: bytes | None = None,
        expect_absent: bool = False,
        content_type: str = "",
        fence: lock_pb2.Fence | None = None,
        lease_id: str = "",
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        """Writes `value` only if the key matches exactly one expectation. Raises VersionConflict
        (version or etag differs), ValueConflict (value differs, or presence), StaleFence."""
        request = _requests.compare_and_set(
            key,
            value,
            expected_version=expected_version,
            expected_etag=expected_etag,
            expected_value=expected_value,
            expect_absent=expect_absent,
            content_type=content_type,
            fence=fence,
            lease_id=lease_id,
        )
        return self._call(self._resources.CompareAndSet, request, timeout)

    def update(
        self,
        key: str,
        apply: ValueUpdate,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        content_type: str = "",
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        """Read-modify-write without lost updates: reads `key`, writes `apply(value)` (`apply(None)`
        when the key is missing: the write creates it) only if nobody wrote in between; on a
        conflict re-applies to the current value the conflict carries (reading again only when it
        does not carry one: values over 4 KiB), up to `backoff.attempts` times with exponential
        backoff and jitter, then raises the last VersionConflict / ValueConflict. `apply` may run several
        times: keep it free of side effects."""
        known: tuple[bool, resource_pb2.Resource | None] = (False, None)
        for retry in range(backoff.attempts - 1):
            try:
                return self._update_once(key, apply, content_type, fence, timeout, known)
            except UPDATE_CONFLICTS as conflict:
                # The conflict carries the current state: the next try needs no read.
                known = _requests.state_from_conflict(key, conflict.conflict)
                time.sleep(backoff.delay(retry))
        return self._update_once(key, apply, content_type, fence, timeout, known)

    def _update_once(
        self,
        key: str,
        apply: ValueUpdate,
        content_type: str,
        fence: lock_pb2.Fence | None,
        timeout: float | None,
        known: tuple[bool, resource_pb2.Resource | None],
    ) -> resource_pb2.Resource:
        current: resource_pb2.Resource | None = known[1]
        if not known[0]:
            try:
                current = self.get(key, timeout=timeout)
            except ResourceNotFound:
                current = None
        value = apply(None if current is None else current.value)
        request = _requests.write_if_unchanged(key, value, current, content_type, fence)
        return self._call(self._resources.CompareAndSet, request, timeout)

    def list(
        self,
        prefix: str = "",
        *,
        page_size: int = 100,
        with_values: bool = False,
        timeout: float | None = None,
    ) -> ResourceListing:
        """Every resource under `prefix` in key order, fetched a page at a time; once iterating,
        the listing's `revision` is the store revision it was read at (watch from the next)."""
        return ResourceListing(
            lambda token: self._call(
                self._resources.ListResources,
                _requests.list_resources(prefix, page_size, with_values, token),
                timeout,
            )
        )

    def versions(
        self, key: str, *, page_size: int = 100, with_values: bool = False, timeout: float | None = None
    ) -> Iterator[resource_pb2.Resource]:
        """The retained versions of `key`, newest first. Raises ResourceNotFound."""
        return self._pages(
            self._resources.ListResourceVersions,
            lambda token: _requests.list_versions(key, page_size, with_values, token),
            lambda page: page.versions,
            timeout,
        )

    def _pages(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Page],
        request_for: Callable[[str], Request],
        items_of: Callable[[Page], Iterable[Item]],
        timeout: float | None,
    ) -> Iterator[Item]:
        """Calls `method` page after page (AIP-158) until a page has no next_page_token."""
        page_token = ""
        while True:
            page = self._call(method, request_for(page_token), timeout)
            yield from items_of(page)
            page_token = page.next_page_token
            if not page_token:
                return

    def transact(
        self,
        compares: Sequence[resource_pb2.Compare],
        operations: Sequence[resource_pb2.Operation],
        *,
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.TransactResponse:
        """All `compares` hold and every operation applies, or nothing does (TransactionConflict)."""
        return self._call(self._resources.Transact, _requests.transact(compares, operations, fence), timeout)

    def watch(
        self,
        key: str,
        *,
        prefix: bool = False,
        start_revision: int = 0,
        timeout: float | None = None,
        reconnect: Backoff | None = DEFAULT_RECONNECT,
    ) -> Watch:
        """Changes to `key` (or every key under it with `prefix`) from `start_revision` (0: from
        now), in revision order, each event with its `revision`. The watch's `revision` is the
        one it has delivered every change up to, and `established()` waits for the server to
        register it. When the stream breaks with UNAVAILABLE it resumes from the next revision by
        itself (`reconnect` tries with backoff; None raises at once). No deadline unless `timeout`
        is given (for the whole watch). `close()` (or a `with` block) cancels it."""
        return Watch(
            lambda request, timeout: self._resources.Watch(request, timeout=timeout),
            WatchCursor(key, prefix, start_revision, timeout),
            reconnect,
        )

    # Leases.

    def grant_lease(
        self, ttl_seconds: int, *, holder: str | None = None, timeout: float | None = None
    ) -> lease_pb2.Lease:
        request = _requests.grant_lease(ttl_seconds, holder or self.holder)
        return self._call(self._leases.GrantLease, request, timeout)

    def refresh_lease(self, lease_id: str, *, timeout: float | None = None) -> lease_pb2.Lease:
        """Extends the lease to its full TTL. Raises LeaseNotFound when it has ended."""
        return self._call(self._leases.RefreshLease, _requests.refresh_lease(lease_id), timeout)

    def revoke_lease(self, lease_id: str, *, timeout: float | None = None) -> lease_pb2.RevokeLeaseResponse:
        """Ends the lease now: its locks are released and its resources deleted."""
        return self._call(self._leases.RevokeLease, _requests.revoke_lease(lease_id), timeout)

    def get_lease(self, lease_id: str, *, timeout: float | None = None) -> lease_pb2.Lease:
        return self._call(self._leases.GetLease, lease_pb2.GetLeaseRequest(lease_id=lease_id), timeout)

    def list_leases(
        self, *, holder: str = "", page_size: int = 100, timeout: float | None = None
    ) -> Iterator[lease_pb2.Lease]:
        """Every live lease this caller owns (of `holder` when set), in id order, a page at a time."""
        return self._pages(
            self._leases.ListLeases,
            lambda token: lease_pb2.ListLeasesRequest(holder=holder, page_size=page_size, page_token=token),
            lambda page: page.leases,
            timeout,
        )

    # Locks.

    def acquire_lock(
        self,
        name: str,
        *,
        ttl_seconds: int | None = None,
        lease_id: str | None = None,
        wait: float = 0.0,
        holder: str | None = None,
        timeout: float | None = None,
    ) -> lock_pb2.Lock:
        """Takes `name` under `lease_id`, or under a new lease of `ttl_seconds` (then yours to keep
        alive and revoke), queueing up to `wait` seconds. Raises LockHeld (conflict: the holder)."""
        request = _requests.acquire_lock(
            name, ttl_seconds=ttl_seconds, lease_id=lease_id, holder=holder or self.holder, wait=wait
        )
        return self._call(
            self._locks.AcquireLock, request, (self.timeout if timeout is None else timeout) + wait
        )

    def release_lock(
        self, name: str, token: int, *, timeout: float | None = None
    ) -> lock_pb2.ReleaseLockResponse:
        """Raises LockNotHeld when `token` is not the current holder's."""
        return self._call(self._locks.ReleaseLock, _requests.release_lock(name, token), timeout)

    def get_lock(self, name: str, *, timeout: float | None = None) -> lock_pb2.Lock:
        return self._call(self._locks.GetLock, lock_pb2.GetLockRequest(name=name), timeout)

    def list_locks(
        self,
        prefix: str = "",
        *,
        page_size: int = 100,
        include_queue: bool = False,
        timeout: float | None = None,
    ) -> Iterator[lock_pb2.Lock]:
        """Every lock under `prefix` this caller may read, in name order, a page at a time."""
        return self._pages(
            self._locks.ListLocks,
            lambda token: lock_pb2.ListLocksRequest(
                prefix=prefix, page_size=page_size, page_token=token, include_queue=include_queue
            ),
            lambda page: page.locks,
            timeout,
        )

    @contextlib.contextmanager
    def lock(
        self,
        name: str,
        ttl_seconds: int = 10,
        *,
        wait: float = 0.0,
        holder: str | None = None,
        on_lost: OnLost | None = None,
    ) -> Iterator[HeldLock]:
        """Holds `name` for the `with` block: acquires it under a lease of its own (queueing up to
        `wait` seconds; LockHeld if still held), refreshes the lease every third of its TTL on a
        background thread, and releases the lock and revokes the lease on exit. If the lease is
        lost meanwhile the `HeldLock` says so (see its docs) and leaving the block raises LockLost.
        """
        sent_at = time.monotonic()
        held = HeldLock(
            self.acquire_lock(name, ttl_seconds=ttl_seconds, wait=wait, holder=holder), ttl_seconds, on_lost
        )
        keeper = LeaseKeeper(
            lambda timeout: self.refresh_lease(held.lease_id, timeout=timeout),
            LeaseSchedule(ttl_seconds, sent_at),
            held.mark_lost,
        )
        keeper.start()
        with holding(held, keeper.stop, lambda: self._let_go(held)):
            yield held

    def _let_go(self, held: HeldLock) -> None:
        """Releases the lock (waking the next waiter) and ends its lease; a failure here only
        leaves the lease to expire, so it is logged, not raised."""
        try:
            self.release_lock(held.name, held.token)
        except GONE_ON_RELEASE as error:
            held.mark_lost(error)  # it was lost before the release (if not already known)
        except LockserviceError as error:
            _log.warning("could not release lock %s: %s", held.name, error)
        try:
            self.revoke_lease(held.lease_id)
        except LeaseNotFound:
            pass
        except LockserviceError as error:
            _log.warning("could not revoke lease of lock %s: %s", held.name, error)
