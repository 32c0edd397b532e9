"""The asyncio client: the same calls as `Client`, awaitable, on a `grpc.aio` channel.

Create it inside the event loop that uses it (a `grpc.aio` channel is bound to one loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TypeVar

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
from lockservice_client.channels import Tls, connect_async
from lockservice_client.client import (
    DEFAULT_BACKOFF,
    DEFAULT_TIMEOUT_SECONDS,
    GONE_ON_RELEASE,
    UPDATE_CONFLICTS,
    ListPage,
    ValueUpdate,
)
from lockservice_client.errors import (
    LeaseNotFound,
    LockserviceError,
    ResourceNotFound,
    error_from_rpc,
)
from lockservice_client.held_lock import AsyncHeldLock, OnLost, holding_async
from lockservice_client.keepalive import AsyncLeaseKeeper, LeaseSchedule
from lockservice_client.listing import AsyncResourceListing
from lockservice_client.watching import DEFAULT_RECONNECT, AsyncWatch, WatchCursor

__all__ = ["AsyncClient"]

Request = TypeVar("Request")
Response = TypeVar("Response")
Page = TypeVar("Page", bound=ListPage)

_log = logging.getLogger("lockservice_client")


class AsyncClient:
    """The asyncio flavour of `Client`; see it for what each call does and raises."""

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        tls: Tls | None = None,
        token: str | None = None,
        call_credentials: grpc.CallCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        holder: str | None = None,
    ) -> None:
        self._owns_channel = channel is None
        self.channel = channel or connect_async(
            target, tls=tls, token=token, call_credentials=call_credentials
        )
        self.timeout = timeout
        self.holder = holder or _requests.default_holder()
        self._resources = resource_pb2_grpc.ResourceServiceStub(self.channel)
        self._leases = lease_pb2_grpc.LeaseServiceStub(self.channel)
        self._locks = lock_pb2_grpc.LockServiceStub(self.channel)

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout: float | None,
    ) -> Response:
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from error

    # Resources.

    async def create(
        self,
        key: str,
        value: bytes,
        *,
        content_type: str = "",
        lease_id: str = "",
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        return await self._call(
            self._resources.CreateResource,
            _requests.create_resource(key, value, content_type, lease_id),
            timeout,
        )

    async def get(self, key: str, *, version: int = 0, timeout: float | None = None) -> resource_pb2.Resource:
        request = resource_pb2.GetResourceRequest(key=key, version=version)
        return await self._call(self._resources.GetResource, request, timeout)

    async def put(
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
        return await self._call(self._resources.UpdateResource, request, timeout)

    async def delete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        expected_etag: str = "",
        allow_missing: bool = False,
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.DeleteResourceResponse:
        request = _requests.delete_resource(
            key,
            expected_version=expected_version,
            expected_etag=expected_etag,
            allow_missing=allow_missing,
            fence=fence,
        )
        return await self._call(self._resources.DeleteResource, request, timeout)

    async def compare_and_set(
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
        return await self._call(self._resources.CompareAndSet, request, timeout)

    async def update(
        self,
        key: str,
        apply: ValueUpdate,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        content_type: str = "",
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.Resource:
        known: tuple[bool, resource_pb2.Resource | None] = (False, None)
        for retry in range(backoff.attempts - 1):
            try:
                return await self._update_once(key, apply, content_type, fence, timeout, known)
            except UPDATE_CONFLICTS as conflict:
                # The conflict carries the current state: the next try needs no read.
                known = _requests.state_from_conflict(key, conflict.conflict)
                await asyncio.sleep(backoff.delay(retry))
        return await self._update_once(key, apply, content_type, fence, timeout, known)

    async def _update_once(
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
                current = await self.get(key, timeout=timeout)
            except ResourceNotFound:
                current = None
        value = apply(None if current is None else current.value)
        request = _requests.write_if_unchanged(key, value, current, content_type, fence)
        return await self._call(self._resources.CompareAndSet, request, timeout)

    def list(
        self,
        prefix: str = "",
        *,
        page_size: int = 100,
        with_values: bool = False,
        timeout: float | None = None,
    ) -> AsyncResourceListing:
        return AsyncResourceListing(
            lambda token: self._call(
                self._resources.ListResources,
                _requests.list_resources(prefix, page_size, with_values, token),
                timeout,
            )
        )

    def versions(
        self, key: str, *, page_size: int = 100, with_values: bool = False, timeout: float | None = None
    ) -> AsyncIterator[resource_pb2.Resource]:
        return self._pages(
            self._resources.ListResourceVersions,
            lambda token: _requests.list_versions(key, page_size, with_values, token),
            lambda page: page.versions,
            timeout,
        )

    async def _pages(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Page],
        request_for: Callable[[str], Request],
        items_of: Callable[[Page], Iterable[resource_pb2.Resource]],
        timeout: float | None,
    ) -> AsyncIterator[resource_pb2.Resource]:
        page_token = ""
        while True:
            page = await self._call(method, request_for(page_token), timeout)
            for item in items_of(page):
                yield item
            page_token = page.next_page_token
            if not page_token:
                return

    async def transact(
        self,
        compares: Sequence[resource_pb2.Compare],
        operations: Sequence[resource_pb2.Operation],
        *,
        fence: lock_pb2.Fence | None = None,
        timeout: float | None = None,
    ) -> resource_pb2.TransactResponse:
        return await self._call(
            self._resources.Transact, _requests.transact(compares, operations, fence), timeout
        )

    def watch(
        self,
        key: str,
        *,
        prefix: bool = False,
        start_revision: int = 0,
        timeout: float | None = None,
        reconnect: Backoff | None = DEFAULT_RECONNECT,
    ) -> AsyncWatch:
        return AsyncWatch(
            lambda request, timeout: self._resources.Watch(request, timeout=timeout),
            WatchCursor(key, prefix, start_revision, timeout),
            reconnect,
        )

    # Leases.

    async def grant_lease(
        self, ttl_seconds: int, *, holder: str | None = None, timeout: float | None = None
    ) -> lease_pb2.Lease:
        request = _requests.grant_lease(ttl_seconds, holder or self.holder)
        return await self._call(self._leases.GrantLease, request, timeout)

    async def refresh_lease(self, lease_id: str, *, timeout: float | None = None) -> lease_pb2.Lease:
        return await self._call(self._leases.RefreshLease, _requests.refresh_lease(lease_id), timeout)

    async def revoke_lease(
        self, lease_id: str, *, timeout: float | None = None
    ) -> lease_pb2.RevokeLeaseResponse:
        return await self._call(self._leases.RevokeLease, _requests.revoke_lease(lease_id), timeout)

    async def get_lease(self, lease_id: str, *, timeout: float | None = None) -> lease_pb2.Lease:
        return await self._call(self._leases.GetLease, lease_pb2.GetLeaseRequest(lease_id=lease_id), timeout)

    # Locks.

    async def acquire_lock(
        self,
        name: str,
        *,
        ttl_seconds: int | None = None,
        lease_id: str | None = None,
        wait: float = 0.0,
        holder: str | None = None,
        timeout: float | None = None,
    ) -> lock_pb2.Lock:
        request = _requests.acquire_lock(
            name, ttl_seconds=ttl_seconds, lease_id=lease_id, holder=holder or self.holder, wait=wait
        )
        deadline = (self.timeout if timeout is None else timeout) + wait
        return await self._call(self._locks.AcquireLock, request, deadline)

    async def release_lock(
        self, name: str, token: int, *, timeout: float | None = None
    ) -> lock_pb2.ReleaseLockResponse:
        return await self._call(self._locks.ReleaseLock, _requests.release_lock(name, token), timeout)

    async def get_lock(self, name: str, *, timeout: float | None = None) -> lock_pb2.Lock:
        return await self._call(self._locks.GetLock, lock_pb2.GetLockRequest(name=name), timeout)

    @contextlib.asynccontextmanager
    async def lock(
        self,
        name: str,
        ttl_seconds: int = 10,
        *,
        wait: float = 0.0,
        holder: str | None = None,
        on_lost: OnLost | None = None,
    ) -> AsyncIterator[AsyncHeldLock]:
        """`Client.lock` for asyncio: the lease is kept alive by a task in this event loop."""
        sent_at = time.monotonic()
        acquired = await self.acquire_lock(name, ttl_seconds=ttl_seconds, wait=wait, holder=holder)
        held = AsyncHeldLock(acquired, ttl_seconds, on_lost)
        keeper = AsyncLeaseKeeper(
            lambda timeout: self.refresh_lease(held.lease_id, timeout=timeout),
            LeaseSchedule(ttl_seconds, sent_at),
            held.mark_lost,
        )
        keeper.start()
        async with holding_async(held, keeper.stop, lambda: self._let_go(held)):
            yield held

    async def _let_go(self, held: AsyncHeldLock) -> None:
        try:
            await self.release_lock(held.name, held.token)
        except GONE_ON_RELEASE as error:
            held.mark_lost(error)  # it was lost before the release (if not already known)
        except LockserviceError as error:
            _log.warning("could not release lock %s: %s", held.name, error)
        try:
            await self.revoke_lease(held.lease_id)
        except LeaseNotFound:
            pass
        except LockserviceError as error:
            _log.warning("could not revoke lease of lock %s: %s", held.name, error)
