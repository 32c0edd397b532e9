"""Versioned resources: create, read, optimistic update and delete, compare-and-set, transactions.

Every write is a body run atomically by the store (see `lockservice.store.base`). Each body
that changes anything takes exactly one new store revision, shared by all keys it touches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lockservice.codec import (
    decode_delete_result,
    decode_resource,
    decode_transact_result,
    encode_delete_result,
    encode_resource,
    encode_transact_result,
)
from lockservice.core import requests as rq
from lockservice.core.fencing import check_fence, check_fence_shape
from lockservice.core.idempotency import fingerprint, request_key, run_once
from lockservice.core.leasing import require_live_lease
from lockservice.core.limits import Limits
from lockservice.core.memory import MemoryBudget
from lockservice.core.ownership import check_lease_owner
from lockservice.core.pagination import decode_page_token, encode_page_token, page_size
from lockservice.core.validation import (
    check_content_type,
    check_etag,
    check_key,
    check_lease_id,
    check_prefix,
    check_request_id,
    check_value,
)
from lockservice.errors import (
    InvalidArgument,
    ResourceExists,
    ResourceNotFound,
    TransactionConflict,
    ValueMismatch,
    VersionMismatch,
    VersionNotFound,
)
from lockservice.model import (
    DEFAULT_CONTENT_TYPE,
    Compare,
    ConflictState,
    DeleteOperation,
    DeleteResult,
    ExpectAbsent,
    Expectation,
    ExpectEtag,
    ExpectPresent,
    ExpectValue,
    ExpectVersion,
    Fence,
    OperationResult,
    Page,
    PutOperation,
    Resource,
    TransactResult,
)
from lockservice.store.base import Store, WriteTxn

__all__ = ["Resources", "expectation_holds"]


def expectation_holds(current: Resource | None, expectation: Expectation) -> bool:
    match expectation:
        case ExpectVersion(version):
            return current is not None and current.version == version
        case ExpectEtag(etag):
            return current is not None and current.etag == etag
        case ExpectValue(value):
            return current is not None and current.value == value
        case ExpectAbsent():
            return current is None
        case ExpectPresent():
            return current is not None


def _conflict(key: str, current: Resource | None, revision: int, expected: str = "") -> ConflictState:
    return ConflictState(key=key, current=current, expected=expected, revision=revision)


def _write(txn: WriteTxn, key: str, value: bytes, content_type: str, lease_id: str) -> Resource:
    """Puts a new version of `key`: version 1 if missing, else +1; returns the new state."""
    if lease_id:
        require_live_lease(txn, lease_id)
    current = txn.get(key)
    revision = txn.next_revision()
    now = txn.now_us
    if current is None:
        resource = Resource(
            key=key,
            value=value,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            version=1,
            create_revision=revision,
            mod_revision=revision,
            create_time_us=now,
            update_time_us=now,
            lease_id=lease_id,
        )
    else:
        resource = Resource(
            key=key,
            value=value,
            content_type=content_type or current.content_type,
            version=current.version + 1,
            create_revision=current.create_revision,
            mod_revision=revision,
            create_time_us=current.create_time_us,
            update_time_us=max(now, current.update_time_us),
            lease_id=lease_id or current.lease_id,
        )
    txn.put(resource)
    return resource


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
        conflict=_conflict(key, current, revision, expected.describe()),
    )


def _current_as_expected(
    txn: WriteTxn, key: str, allow_missing: bool, expectation: Expectation | None
) -> Resource | None:
    """The key's current state, if it exists (or may be missing) and meets the expectation."""
    current = txn.get(key)
    if current is None and not allow_missing:
        raise ResourceNotFound(f"{key} does not exist", metadata={"key": key})
    if expectation is not None and not expectation_holds(current, expectation):
        _raise_version_mismatch(txn.current_revision(), key, current, expectation)
    return current


def _raise_cas_mismatch(revision: int, key: str, current: Resource | None, expectation: Expectation) -> None:
    if isinstance(expectation, ExpectVersion | ExpectEtag):
        _raise_version_mismatch(revision, key, current, expectation)
    found = "missing" if current is None else f"at version {current.version}"
    raise ValueMismatch(
        f"{key} is {found} and does not match the expected {expectation.describe()}",
        metadata={"key": key, **({"current_version": str(current.version)} if current else {})},
        conflict=_conflict(key, current, revision, expectation.describe()),
    )


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
        self._limits = limits
        self._memory = memory or MemoryBudget(limits.memory_budget_bytes, limits.max_value_bytes)

    # -- checks shared by the writes -------------------------------------------------------

    def _check_write(self, key: str, value: bytes, content_type: str, request_id: str) -> None:
        check_key(key, self._limits)
        check_value(value, self._limits)
        check_content_type(content_type)
        check_request_id(request_id, self._limits)

    def _check_attachments(
        self, fence: Fence | None = None, lease_id: str = "", owner: str | None = None
    ) -> None:
        """A fence of the right shape; a lease id of the right shape that the caller owns."""
        check_fence_shape(fence, self._limits)
        if lease_id:
            check_lease_id(lease_id)
            check_lease_owner(lease_id, owner)

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
        self._check_attachments(lease_id=req.lease_id, owner=req.owner)
        request_print = fingerprint("CreateResource", req)

        def run(txn: WriteTxn) -> Resource:
            current = txn.get(req.key)
            if current is not None:
                raise ResourceExists(
                    f"{req.key} already exists at version {current.version}",
                    metadata={"key": req.key, "current_version": str(current.version)},
                    conflict=_conflict(req.key, current, txn.current_revision(), "absent"),
                )
            return _write(txn, req.key, req.value, req.content_type, req.lease_id)

        return await self._store.write(
            lambda txn: run_once(txn, req, request_print, lambda: run(txn), encode_resource, decode_resource)
        )

    async def update(self, req: rq.UpdateResource) -> Resource:
        self._check_write(req.key, req.value, req.content_type, req.request_id)
        expectation = _update_expectation(req.expected_version, req.expected_etag)
        self._check_attachments(req.fence, req.lease_id, req.owner)
        request_print = fingerprint("UpdateResource", req)

        def run(txn: WriteTxn) -> Resource:
            check_fence(txn, req.fence)
            _current_as_expected(txn, req.key, req.allow_missing, expectation)
            return _write(txn, req.key, req.value, req.content_type, req.lease_id)

        return await self._store.write(
            lambda txn: run_once(txn, req, request_print, lambda: run(txn), encode_resource, decode_resource)
        )

    async def delete(self, req: rq.DeleteResource) -> DeleteResult:
        check_key(req.key, self._limits)
        check_request_id(req.request_id, self._limits)
        expectation = _update_expectation(req.expected_version, req.expected_etag)
        self._check_attachments(req.fence)
        request_print = fingerprint("DeleteResource", req)

        def run(txn: WriteTxn) -> DeleteResult:
            check_fence(txn, req.fence)
            current = _current_as_expected(txn, req.key, req.allow_missing, expectation)
            if current is None:
                return DeleteResult(resource=None, revision=txn.current_revision())
            revision = txn.next_revision()
            txn.delete(req.key)
            return DeleteResult(resource=current, revision=revision)

        return await self._store.write(
            lambda txn: run_once(
                txn,
                req,
                request_print,
                lambda: run(txn),
                encode_delete_result,
                decode_delete_result,
            )
        )

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
        self._check_attachments(req.fence, req.lease_id, req.owner)
        request_print = fingerprint("CompareAndSet", req)

        if req.fence is None:
            await self._refuse_known_mismatch(req.key, expectation, request_key(req.request_id, req.owner))

        def run(txn: WriteTxn) -> Resource:
            check_fence(txn, req.fence)
            current = txn.get(req.key)
            if not expectation_holds(current, expectation):
                _raise_cas_mismatch(txn.current_revision(), req.key, current, expectation)
            return _write(txn, req.key, req.value, req.content_type, req.lease_id)

        return await self._store.write(
            lambda txn: run_once(txn, req, request_print, lambda: run(txn), encode_resource, decode_resource)
        )

    async def _refuse_known_mismatch(self, key: str, expectation: Expectation, answer_key: str) -> None:
        """Answers a CompareAndSet whose expectation fails against the state the store holds in
        memory, without queueing it for the writer: on a hot key most attempts are such losers,
        and each one that skips the writer shortens the winner's commit. A request_id that was
        already answered goes on to the writer, which returns that first answer."""
        known, current = self._store.peek(key)
        if not known or expectation_holds(current, expectation):
            return
        if answer_key and await self._store.answered(answer_key):
            return
        _raise_cas_mismatch(await self._store.current_revision(), key, current, expectation)

    def _check_transaction(self, req: rq.Transact) -> None:
        limit = self._limits.max_transaction_items
        check_request_id(req.request_id, self._limits)
        if not req.operations:
            raise InvalidArgument(
                "a transaction needs at least one operation", metadata={"field": "operations"}
            )
        for name, items in (("compares", req.compares), ("operations", req.operations)):
            if len(items) > limit:
                raise InvalidArgument(
                    f"{name} has {len(items)} items; the limit is {limit}",
                    metadata={"field": name, "limit": str(limit)},
                )
        for i, compare in enumerate(req.compares):
            check_key(compare.key, self._limits, field=f"compares[{i}].key")
            if isinstance(compare.expectation, ExpectValue):
                check_value(compare.expectation.value, self._limits, field=f"compares[{i}].value")
            if isinstance(compare.expectation, ExpectEtag):
                check_etag(compare.expectation.etag, field=f"compares[{i}].etag")
            if isinstance(compare.expectation, ExpectVersion) and compare.expectation.version < 1:
                raise InvalidArgument(
                    f"compares[{i}].version must be 1 or more", metadata={"field": f"compares[{i}].version"}
                )
        seen: set[str] = set()
        for i, op in enumerate(req.operations):
            check_key(op.key, self._limits, field=f"operations[{i}].key")
            if op.key in seen:
                raise InvalidArgument(
                    f"operations[{i}] names {op.key} again; a key may appear once per transaction",
                    metadata={"field": f"operations[{i}].key"},
                )
            seen.add(op.key)
            if isinstance(op, PutOperation):
                check_value(op.value, self._limits, field=f"operations[{i}].value")
                check_content_type(op.content_type, field=f"operations[{i}].content_type")
                self._check_attachments(lease_id=op.lease_id, owner=req.owner)
        self._check_attachments(req.fence)

    async def transact(self, req: rq.Transact) -> TransactResult:
        self._check_transaction(req)
        request_print = fingerprint("Transact", req)

        def run(txn: WriteTxn) -> TransactResult:
            check_fence(txn, req.fence)
            for i, compare in enumerate(req.compares):
                _check_compare(txn, i, compare)
            results: list[OperationResult] = []
            for op in req.operations:
                if isinstance(op, DeleteOperation):
                    current = txn.get(op.key)
                    if current is None:
                        raise ResourceNotFound(
                            f"{op.key} does not exist; the transaction deletes it",
                            metadata={"key": op.key},
                        )
                    txn.next_revision()
                    txn.delete(op.key)
                    results.append(OperationResult(resource=current, deleted=True))
                else:
                    resource = _write(txn, op.key, op.value, op.content_type, op.lease_id)
                    results.append(OperationResult(resource=resource, deleted=False))
            return TransactResult(revision=txn.next_revision(), results=tuple(results))

        return await self._store.write(
            lambda txn: run_once(
                txn,
                req,
                request_print,
                lambda: run(txn),
                encode_transact_result,
                decode_transact_result,
            )
        )


def _check_compare(txn: WriteTxn, index: int, compare: Compare) -> None:
    current = txn.get(compare.key)
    if expectation_holds(current, compare.expectation):
        return
    found = "missing" if current is None else f"at version {current.version}"
    expected = compare.expectation.describe()
    raise TransactionConflict(
        f"compares[{index}] failed: {compare.key} is {found}, not {expected}",
        metadata={
            "key": compare.key,
            "compare_index": str(index),
            **({"current_version": str(current.version)} if current else {}),
        },
        conflict=ConflictState(
            key=compare.key,
            current=current,
            expected=expected,
            compare_index=index,
            revision=txn.current_revision(),
        ),
    )
