"""What a caller sees of a conflict or an answer: the state only where it may read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lockservice import errors
from lockservice.core.access import AccessPolicy, Grant, Right
from lockservice.core.visibility import EVERYTHING, Visibility
from lockservice.model import (
    ConflictState,
    DeleteResult,
    LockListing,
    LockState,
    LockView,
    LockWaiter,
    OperationResult,
    Resource,
    TransactResult,
)

POLICY = AccessPolicy(
    [
        Grant("writer", "orders/", frozenset({Right.WRITE, Right.LOCK})),
        Grant("reader", "orders/", frozenset(Right)),
    ]
)
WRITER = Visibility(POLICY, "writer")
READER = Visibility(POLICY, "reader")
ORDER = Resource(
    key="orders/1",
    value=b"secret",
    content_type="text/plain",
    version=7,
    create_revision=3,
    mod_revision=42,
    create_time_us=1,
    update_time_us=2,
    lease_id="lease-of-another",
)
HELD = LockState(
    name="orders/lock",
    held=True,
    holder="worker-a",
    lease_id="lease-a",
    token=5,
    acquire_time_us=1,
    lock_delay_us=0,
    available_time_us=0,
)


def _lock_conflict(expected: str) -> ConflictState:
    return ConflictState(
        key="orders/lock",
        current=None,
        expected=expected,
        revision=9,
        holder="worker-a",
        token=5,
        expire_time_us=3,
        lease_id="lease-a",
    )


@pytest.mark.parametrize(
    ("error", "message", "metadata"),
    [
        (
            errors.ResourceExists(
                "orders/1 already exists at version 7",
                metadata={"key": "orders/1", "current_version": "7"},
                conflict=ConflictState(key="orders/1", current=ORDER, expected="absent", revision=50),
            ),
            "orders/1 already exists",
            {"key": "orders/1"},
        ),
        (
            errors.TransactionConflict(
                "compares[2] failed: orders/1 is at version 7, not version 6",
                metadata={"key": "orders/1", "compare_index": "2", "current_version": "7"},
                conflict=ConflictState(
                    key="orders/1", current=ORDER, expected="version 6", compare_index=2, revision=50
                ),
            ),
            "compares[2] failed: orders/1 is not version 6",
            {"key": "orders/1", "compare_index": "2"},
        ),
        (
            errors.LockHeld(
                "lock orders/lock is held by worker-a (token 5); 2 waiter(s) queued",
                metadata={"name": "orders/lock", "token": "5", "waiters": "2"},
                conflict=_lock_conflict("free"),
            ),
            "lock orders/lock is not free",
            {"name": "orders/lock"},
        ),
        (
            errors.StaleFence(
                "fence token 4 is stale: lock orders/lock is now held with token 5",
                metadata={"lock_name": "orders/lock", "token": "4", "current_token": "5"},
                conflict=_lock_conflict("token 4"),
            ),
            "fence token 4 is stale for lock orders/lock",
            {"lock_name": "orders/lock"},
        ),
    ],
)
def test_a_conflict_keeps_only_the_echo_of_the_request_for_a_caller_that_may_not_read(
    error: errors.LockserviceError, message: str, metadata: dict[str, str]
) -> None:
    assert READER.error(error) is error
    assert EVERYTHING.error(error) is error
    seen = WRITER.error(error)
    assert type(seen) is type(error)
    assert seen.message == message + "; its current state is withheld: this identity may not read it"
    assert seen.metadata == metadata
    assert error.conflict is not None
    assert seen.conflict == ConflictState(
        key=error.conflict.key,
        current=None,
        expected=error.conflict.expected,
        compare_index=error.conflict.compare_index,
        withheld=True,
    )


def test_an_error_without_a_conflict_passes_unchanged() -> None:
    error = errors.ResourceNotFound("orders/1 does not exist", metadata={"key": "orders/1"})
    assert WRITER.error(error) is error


def test_a_delete_answers_its_last_state_only_to_a_reader() -> None:
    result = DeleteResult(resource=ORDER, revision=43)
    assert READER.deleted(result) is result
    assert WRITER.deleted(result) == DeleteResult(resource=None, revision=43)
    transacted = TransactResult(
        revision=44,
        results=(
            OperationResult(resource=ORDER, deleted=True),
            OperationResult(resource=ORDER, deleted=False),
        ),
    )
    assert READER.transacted(transacted) == transacted
    assert WRITER.transacted(transacted).results == (
        OperationResult(resource=None, deleted=True),
        OperationResult(resource=ORDER, deleted=False),  # a put's result is what the caller wrote
    )


def test_a_release_answers_the_next_holder_only_to_a_reader() -> None:
    taken_over = LockView(state=HELD, expire_time_us=3, waiters=2)
    assert READER.released(taken_over, token=4) is taken_over
    freed = WRITER.released(taken_over, token=4)
    assert (freed.state.held, freed.state.holder, freed.state.lease_id, freed.state.token) == (
        False,
        "",
        "",
        4,
    )
    assert (freed.expire_time_us, freed.waiters) == (0, 0)
    assert WRITER.acquired(taken_over) == LockView(state=HELD, expire_time_us=3, waiters=0)
    assert READER.acquired(taken_over) is taken_over


QUEUED = LockWaiter(
    waiter_id="waiter-b",
    name="orders/lock",
    seq=1,
    holder="worker-b",
    lease_id="lease-b",
    ttl_seconds=30,
    lock_delay_us=0,
    request_id="request-b",
    fingerprint="fingerprint-b",
    deadline_us=99,
)
LISTED = LockListing(view=LockView(state=HELD, expire_time_us=3, waiters=1), queue=(QUEUED,))


def test_a_listing_shows_a_lock_whole_to_a_caller_with_read_and_lock_rights() -> None:
    assert READER.listed(LISTED) == LISTED
    assert EVERYTHING.listed(LISTED) == LISTED


def test_a_listing_leaves_out_a_lock_the_caller_may_not_read() -> None:
    assert WRITER.listed(LISTED) is None
    assert (
        READER.listed(
            LockListing(view=LockView(state=replace(HELD, name="other/lock"), expire_time_us=3, waiters=0))
        )
        is None
    )


def test_a_listing_withholds_the_holder_of_a_lock_the_caller_may_read_but_not_take() -> None:
    viewer = Visibility(AccessPolicy([Grant("viewer", "orders/", frozenset({Right.READ}))]), "viewer")
    shown = viewer.listed(LISTED)
    assert shown == LockListing(
        view=LockView(
            state=replace(HELD, holder="", lease_id="", token=0, grant_id=""), expire_time_us=3, waiters=1
        ),
        queue=(
            LockWaiter(
                waiter_id="",
                name="orders/lock",
                seq=1,
                holder="",
                lease_id="",
                ttl_seconds=0,
                lock_delay_us=0,
                deadline_us=99,
            ),
        ),
        detail_withheld=True,
    )
