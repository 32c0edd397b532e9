"""Transactions: compares and operations on several keys, applied atomically or not at all.

Every compare must hold (else TRANSACTION_CONFLICT naming the first that failed), then the
operations run in order; all the keys written share the body's one new revision.
"""

from __future__ import annotations

from lockservice.codec import decode_transact_result, encode_transact_result
from lockservice.core import requests as rq
from lockservice.core.idempotency import Answer, Once, write_once
from lockservice.core.limits import Limits
from lockservice.core.locks.fencing import check_fence
from lockservice.core.validation import (
    check_content_type,
    check_etag,
    check_key,
    check_request_id,
    check_value,
)
from lockservice.core.versions import check_attachments, expectation_holds, write_version
from lockservice.errors import InvalidArgument, ResourceNotFound, TransactionConflict
from lockservice.model import (
    Compare,
    ConflictState,
    DeleteOperation,
    ExpectEtag,
    ExpectValue,
    ExpectVersion,
    OperationResult,
    PutOperation,
    TransactResult,
)
from lockservice.store.base import Store, WriteTxn

__all__ = ["transact"]

_TRANSACT_RESULT = Answer(encode_transact_result, decode_transact_result)


async def transact(store: Store, limits: Limits, req: rq.Transact) -> TransactResult:
    """Checks the transaction, then applies it in one idempotent write."""
    _check_transaction(req, limits)

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
                resource = write_version(txn, op.key, op.value, op.content_type, op.lease_id)
                results.append(OperationResult(resource=resource, deleted=False))
        return TransactResult(revision=txn.next_revision(), results=tuple(results))

    return await write_once(store, Once.of("Transact", req), run, _TRANSACT_RESULT)


def _check_transaction(req: rq.Transact, limits: Limits) -> None:
    """INVALID_ARGUMENT for a transaction the store must not see: empty, too large, a key named
    twice among the operations, or an item of the wrong shape."""
    limit = limits.max_transaction_items
    check_request_id(req.request_id, limits)
    if not req.operations:
        raise InvalidArgument("a transaction needs at least one operation", metadata={"field": "operations"})
    for name, items in (("compares", req.compares), ("operations", req.operations)):
        if len(items) > limit:
            raise InvalidArgument(
                f"{name} has {len(items)} items; the limit is {limit}",
                metadata={"field": name, "limit": str(limit)},
            )
    for i, compare in enumerate(req.compares):
        check_key(compare.key, limits, field=f"compares[{i}].key")
        if isinstance(compare.expectation, ExpectValue):
            check_value(compare.expectation.value, limits, field=f"compares[{i}].value")
        if isinstance(compare.expectation, ExpectEtag):
            check_etag(compare.expectation.etag, field=f"compares[{i}].etag")
        if isinstance(compare.expectation, ExpectVersion) and compare.expectation.version < 1:
            raise InvalidArgument(
                f"compares[{i}].version must be 1 or more", metadata={"field": f"compares[{i}].version"}
            )
    seen: set[str] = set()
    for i, op in enumerate(req.operations):
        check_key(op.key, limits, field=f"operations[{i}].key")
        if op.key in seen:
            raise InvalidArgument(
                f"operations[{i}] names {op.key} again; a key may appear once per transaction",
                metadata={"field": f"operations[{i}].key"},
            )
        seen.add(op.key)
        if isinstance(op, PutOperation):
            check_value(op.value, limits, field=f"operations[{i}].value")
            check_content_type(op.content_type, field=f"operations[{i}].content_type")
            check_attachments(limits, lease_id=op.lease_id, owner=req.owner)
    check_attachments(limits, req.fence)


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
