"""Versioned resources: create, read, list, optimistic update and delete, compare-and-set; the
entry points of ResourceService (transactions are `lockservice.core.transactions`).

Every write is a body run atomically by the store (see `lockservice.store.base`), through
`lockservice.core.idempotency.write_once`. Each body that changes anything takes exactly one
new store revision, shared by all keys it touches (`lockservice.core.versions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from lockservice.codec import decode_delete_result, decode_resource, encode_delete_result, encode_resource
from lockservice.core import requests as rq
from lockservice.core.idempotency import Answer, Once, write_once
from lockservice.core.limits import Limits
from lockservice.core.locks.fencing import check_fence
from lockservice.core.memory import MemoryBudget
from lockservice.core.pagination import decode_page_token, encode_page_token, page_size
from lockservice.core.transactions import transact
from lockservice.core.validation import (
    check_content_type,
    check_etag,
    check_key,
    check_prefix,
    check_request_id,
    check_value,
)
from lockservice.core.versions import (
    check_attachments,
    expectation_holds,
    key_conflict,
    write_next_version,
    write_version,
)
from lockservice.errors import (
    InvalidArgument,
    LockserviceError,
    ResourceExists,
    ResourceNotFound,
    ValueMismatch,
    VersionMismatch,
    VersionNotFound,
)
from lockservice.model import (
    ConflictState,
    DeleteResult,
    Expectation,
    ExpectEtag,
    ExpectValue,
    ExpectVersion,
    Fence,
    Page,
    Resource,
    TransactResult,
)
from lockservice.store.base import DurableState, Store, WriteTxn

__all__ = ["Resources"]

T = TypeVar("T")

_RESOURCE = Answer(encode_resource, decode_resource)
_DELETE_RESULT = Answer(encode_delete_result, decode_delete_result)


def _update_expectation(expected_version: int | None, expected_etag: str) -> Expectation | None:
    if expected_version is not None and expected_etag:
        raise InvalidArgument(
            "set expected_version or expected_etag, not both", metadata={"field": "expected_etag"}
        )
    if expected_version is not None:
        if expected_version < 1:
            raise InvalidArgument(
                "expected_version must be 1 or more", metadata={"field": "expected_version"}
            )
        return ExpectVersion(expected_version)
    if expected_etag:
        check_etag(expected_etag, field="expected_etag")
        return ExpectEtag(expected_etag)
    return None


def _raise_version_mismatch(revision: int, key: str, current: Resource | None, expected: Expectation) -> None:
    found = "missing" if current is None else f"at version {current.version}"
    raise VersionMismatch(
        f"{key} is {found}, not at the expected {expected.describe()}",
        metadata={"key": key, **({"current_version": str(current.version)} if current else {})},
        conflict=key_conflict(key, current, revision, expected.describe()),
    )


# A write's check of the key's state before it writes: raises the write's refusal, given the
# key's current state (None: absent) and the last committed store revision.
StateCheck = Callable[[Resource | None, int], None]


def _as_expected(key: str, allow_missing: bool, expectation: Expectation | None) -> StateCheck:
    """The check of an update or delete: the key exists (or may be missing) and meets the
    expectation."""

    def check(current: Resource | None, revision: int) -> None:
        if current is None and not allow_missing:
            raise ResourceNotFound(f"{key} does not exist", metadata={"key": key})
        if expectation is not None and not expectation_holds(current, expectation):
            _raise_version_mismatch(revision, key, current, expectation)

    return check


def _cas_expected(key: str, expectation: Expectation) -> StateCheck:
    """The check of a CompareAndSet: VERSION_MISMATCH for a version or etag, else VALUE_MISMATCH."""

    def check(current: Resource | None, revision: int) -> None:
        if expectation_holds(current, expectation):
            return
        if isinstance(expectation, ExpectVersion | ExpectEtag):
            _raise_version_mismatch(revision, key, current, expectation)
        found = "missing" if current is None else f"at version {current.version}"
        raise ValueMismatch(
            f"{key} is {found} and does not match the expected {expectation.describe()}",
            metadata={"key": key, **({"current_version": str(current.version)} if current else {})},
            conflict=key_conflict(key, current, revision, expectation.describe()),
        )

    return check


def _checked(txn: WriteTxn, key: str, check: StateCheck) -> Resource | None:
    """The key's current state in the body, once `check` passed it."""
    current = txn.get(key)
    check(current, txn.current_revision())
    return current


def _cut(rows: list[Resource], size: int, max_bytes: int) -> tuple[list[Resource], bool]:
    """A page of at most `size` of `rows` (read with one extra, and cut by `max_bytes` when
    set), and whether more may follow: an extra row came back, or the bytes ran out first (then
    the next page may turn out empty, which AIP-158 allows)."""
    if len(rows) > size:
        return rows[:size], True
    full = max_bytes > 0 and sum(row.footprint for row in rows) >= max_bytes
    return rows, full and bool(rows)


class Resources:
    """The rules of versioned resources over a `Store`."""

    def __init__(self, store: Store, limits: Limits, memory: MemoryBudget | None = None) -> None:
        self._store = store
        # Attempts of conditional writes under way, by request key (only those with one).
        self._under_way: dict[str, int] = {}
        self._limits = limits
        self._memory = memory or MemoryBudget(limits.memory_budget_bytes, limits.max_value_bytes)

    # -- checks shared by the writes -------------------------------------------------------

    def _check_write(self, key: str, value: bytes, content_type: str, request_id: str) -> None:
        check_key(key, self._limits)
        check_value(value, self._limits)
        check_content_type(content_type)
        check_request_id(request_id, self._limits)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, req: rq.GetResource) -> Resource:
        check_key(req.key, self._limits)
        if req.version < 0:
            raise InvalidArgument("version must not be negative", metadata={"field": "version"})
        current = await self._store.get(req.key)
        if current is None:
            raise ResourceNotFound(f"{req.key} does not exist", metadata={"key": req.key})
        if req.version in (0, current.version):
            self._memory.fit_reply([current])
            return current
        past = None
        if req.version < current.version:
            past = await self._store.get_version(req.key, current.create_revision, req.version)
        if past is None:
            raise VersionNotFound(
                f"version {req.version} of {req.key} is not retained; the current version is "
                f"{current.version} and the server keeps the last {self._limits.history_versions}",
                metadata={
                    "key": req.key,
                    "version": str(req.version),
                    "current_version": str(current.version),
                },
                conflict=ConflictState(
                    key=req.key,
                    current=current,
                    expected=f"version {req.version}",
                    revision=await self._store.current_revision(),
                ),
            )
        self._memory.fit_reply([past])
        return past

    async def _read_page(
        self, size: int, with_values: bool, read: Callable[[int], Awaitable[list[Resource]]]
    ) -> tuple[list[Resource], bool]:
        """A page of at most `size` resources from `read(max_bytes)` (which asks the store for
        one more), and whether more may follow. With values, the page holds room in the memory
        budget while it is read, and carries about a largest value's worth of bytes."""
        if not with_values:
            return _cut(await read(0), size, 0)
        async with self._memory.page() as max_bytes:
            rows = await read(max_bytes)
        rows, more = _cut(rows, size, max_bytes)
        fit = self._memory.fit_reply(rows)
        return (rows[:fit], True) if fit < len(rows) else (rows, more)

    async def list(self, req: rq.ListResources) -> Page:
        check_prefix(req.prefix, self._limits)
        size = page_size(req.page_size, self._limits)
        query = f"ListResources\x00{req.prefix}"
        cursor = decode_page_token(self._store.page_token_secret, req.page_token, query, str)
        start_after = cursor if isinstance(cursor, str) else ""
        revision = await self._store.current_revision()
        rows, more = await self._read_page(
            size,
            req.with_values,
            lambda max_bytes: self._store.list_resources(
                req.prefix, start_after, size + 1, with_values=req.with_values, max_bytes=max_bytes
            ),
        )
        token = encode_page_token(self._store.page_token_secret, query, rows[-1].key) if more else ""
        return Page(items=tuple(rows), next_page_token=token, revision=revision)

    async def list_versions(self, req: rq.ListResourceVersions) -> Page:
        check_key(req.key, self._limits)
        size = page_size(req.page_size, self._limits)
        current = await self._store.get(req.key)
        if current is None:
            raise ResourceNotFound(f"{req.key} does not exist", metadata={"key": req.key})
        query = f"ListResourceVersions\x00{req.key}\x00{current.create_revision}"
        cursor = decode_page_token(self._store.page_token_secret, req.page_token, query, int)
        below = cursor if isinstance(cursor, int) else current.version + 1
        rows, more = await self._read_page(
            size,
            req.with_values,
            lambda max_bytes: self._store.list_versions(
                req.key,
                current.create_revision,
                below,
                size + 1,
                with_values=req.with_values,
                max_bytes=max_bytes,
            ),
        )
        token = encode_page_token(self._store.page_token_secret, query, rows[-1].version) if more else ""
        return Page(items=tuple(rows), next_page_token=token, revision=current.mod_revision)

    # -- writes -----------------------------------------------------------------------------

    async def create(self, req: rq.CreateResource) -> Resource:
        self._check_write(req.key, req.value, req.content_type, req.request_id)
        check_attachments(self._limits, lease_id=req.lease_id, owner=req.owner)

        def run(txn: WriteTxn) -> Resource:
            current = txn.get(req.key)
            if current is not None:
                raise ResourceExists(
                    f"{req.key} already exists at version {current.version}",
                    metadata={"key": req.key, "current_version": str(current.version)},
                    conflict=key_conflict(req.key, current, txn.current_revision(), "absent"),
                )
            return write_version(txn, req.key, req.value, req.content_type, req.lease_id)

        return await write_once(self._store, Once.of("CreateResource", req), run, _RESOURCE)

    async def update(self, req: rq.UpdateResource) -> Resource:
        self._check_write(req.key, req.value, req.content_type, req.request_id)
        expectation = _update_expectation(req.expected_version, req.expected_etag)
        check_attachments(self._limits, req.fence, req.lease_id, req.owner)

        check = _as_expected(req.key, req.allow_missing, expectation)

        def run(txn: WriteTxn) -> Resource:
            check_fence(txn, req.fence)
            current = _checked(txn, req.key, check)
            return write_next_version(txn, current, req.key, req.value, req.content_type, req.lease_id)

        once = Once.of("UpdateResource", req)
        if expectation is None:
            return await write_once(self._store, once, run, _RESOURCE)
        return await self._write_unless_refuted(once, req.key, req.fence, check, run, _RESOURCE)

    async def delete(self, req: rq.DeleteResource) -> DeleteResult:
        check_key(req.key, self._limits)
        check_request_id(req.request_id, self._limits)
        expectation = _update_expectation(req.expected_version, req.expected_etag)
        check_attachments(self._limits, req.fence)

        check = _as_expected(req.key, req.allow_missing, expectation)

        def run(txn: WriteTxn) -> DeleteResult:
            check_fence(txn, req.fence)
            current = _checked(txn, req.key, check)
            if current is None:
                return DeleteResult(resource=None, revision=txn.current_revision())
            revision = txn.next_revision()
            txn.delete(req.key)
            return DeleteResult(resource=current, revision=revision)

        once = Once.of("DeleteResource", req)
        if expectation is None:
            return await write_once(self._store, once, run, _DELETE_RESULT)
        return await self._write_unless_refuted(once, req.key, req.fence, check, run, _DELETE_RESULT)

    async def compare_and_set(self, req: rq.CompareAndSet) -> Resource:
        self._check_write(req.key, req.value, req.content_type, req.request_id)
        if req.expectation is None:
            raise InvalidArgument(
                "set one of expected_version, expected_etag, expected_value or expect_absent",
                metadata={"field": "expected"},
            )
        expectation = req.expectation
        if isinstance(expectation, ExpectVersion) and expectation.version < 1:
            raise InvalidArgument(
                "expected_version must be 1 or more", metadata={"field": "expected_version"}
            )
        if isinstance(expectation, ExpectEtag):
            check_etag(expectation.etag, field="expected_etag")
        if isinstance(expectation, ExpectValue):
            check_value(expectation.value, self._limits, field="expected_value")
        check_attachments(self._limits, req.fence, req.lease_id, req.owner)
        check = _cas_expected(req.key, expectation)

        def run(txn: WriteTxn) -> Resource:
            check_fence(txn, req.fence)
            current = _checked(txn, req.key, check)
            return write_next_version(txn, current, req.key, req.value, req.content_type, req.lease_id)

        once = Once.of("CompareAndSet", req)
        return await self._write_unless_refuted(once, req.key, req.fence, check, run, _RESOURCE)

    async def _write_unless_refuted(
        self,
        once: Once,
        key: str,
        fence: Fence | None,
        check: StateCheck,
        run: Callable[[WriteTxn], T],
        answer: Answer[T],
    ) -> T:
        """`write_once(run)` of a conditional write, unless the key's latest durable state
        already refutes it: then the refusal is raised without queueing the body for the writer,
        when the store can say that state from memory (`Capabilities.durable_state`, which first
        waits out a commit that decides the key). On a hot key most attempts are such losers:
        each one that skips the writer shortens the winner's commit, and learns the state the
        winner left. The refusal is the body's own `check` (`run` calls it on what it reads), on
        the state the body would read next, so it is the writer's, field for field.

        A write with a request_id is refused so only when no attempt of that request was
        answered (a retry gets its first answer from the writer, as a REQUEST_ID_REUSED does)
        and no earlier attempt of it is still under way in this process (it may yet succeed, and
        the writer runs it first). A fenced write always goes to the writer: its fence is
        checked first, against the lock's state."""
        durable_state = self._store.capabilities.durable_state
        if durable_state is None or fence is not None:
            return await write_once(self._store, once, run, answer)
        if not once.key:
            await self._refuse_if_refuted(durable_state, key, check, "")
            return await write_once(self._store, once, run, answer)
        under_way = self._under_way
        under_way[once.key] = under_way.get(once.key, 0) + 1
        try:
            await self._refuse_if_refuted(durable_state, key, check, once.key)
            return await write_once(self._store, once, run, answer)
        finally:
            left = under_way.pop(once.key) - 1
            if left:
                under_way[once.key] = left

    async def _refuse_if_refuted(
        self,
        durable_state: Callable[[str], Awaitable[DurableState | None]],
        key: str,
        check: StateCheck,
        request_key: str,
    ) -> None:
        known = await durable_state(key)
        if known is None:
            return
        try:
            check(*known)
        except LockserviceError:
            if request_key and (self._under_way[request_key] > 1 or await self._store.answered(request_key)):
                return  # the writer answers it, after the attempt before it
            raise

    async def transact(self, req: rq.Transact) -> TransactResult:
        """Applies compares and operations atomically (`lockservice.core.transactions`)."""
        return await transact(self._store, self._limits, req)
