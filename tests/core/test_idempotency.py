from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lockservice.core import requests as rq
from lockservice.core.idempotency import Answer, Once, Pending, fingerprint, request_key, write_once
from lockservice.core.limits import Limits
from lockservice.core.ownership import owner_tag
from lockservice.core.validation import check_request_id
from lockservice.errors import (
    InvalidArgument,
    LeaseNotFound,
    LockNotHeld,
    RequestIdReused,
    ResourceExists,
    VersionMismatch,
)
from lockservice.model import Compare, ExpectValue, PutOperation
from lockservice.store.base import WriteTxn
from lockservice.store.sqlite import SqliteStore
from tests.core.conftest import Core, make_core


def test_fingerprint_ignores_request_id_only() -> None:
    a = rq.CreateResource(key="k", value=b"v", request_id="one")
    b = rq.CreateResource(key="k", value=b"v", request_id="two")
    assert fingerprint("CreateResource", a) == fingerprint("CreateResource", b)
    assert fingerprint("CreateResource", a) != fingerprint(
        "CreateResource", rq.CreateResource(key="k", value=b"w", request_id="one")
    )
    assert fingerprint("CreateResource", a) != fingerprint("UpdateResource", a)


def test_fingerprint_tells_fields_apart() -> None:
    # The same bytes moved from one field to another must not collide.
    a = rq.CreateResource(key="k", value=b"", content_type="ab", request_id="r")
    b = rq.CreateResource(key="k", value=b"ab", content_type="", request_id="r")
    assert fingerprint("CreateResource", a) != fingerprint("CreateResource", b)


def test_fingerprint_covers_nested_transaction_parts() -> None:
    compares = (Compare("k", ExpectValue(b"1")),)
    a = rq.Transact(compares=compares, operations=(PutOperation("k", b"2"),), request_id="r")
    b = rq.Transact(compares=compares, operations=(PutOperation("k", b"3"),), request_id="r")
    assert fingerprint("Transact", a) != fingerprint("Transact", b)


def test_no_request_id_needs_no_fingerprint() -> None:
    # Nothing is ever compared with it: the digest of a large value is not worth its cost.
    assert fingerprint("CreateResource", rq.CreateResource(key="k", value=b"v" * 1024)) == ""


def test_a_request_key_is_the_id_within_the_callers_identity() -> None:
    assert request_key("", "alice") == ""
    assert request_key("r", None) == "r"  # no authentication: ids as they are
    alice, bob = request_key("r", "alice"), request_key("r", "bob")
    assert alice != bob
    assert alice == f"{owner_tag('alice')} r"


def test_no_request_id_can_name_another_identitys_answer() -> None:
    """The key puts a space between tag and id, and a request_id never holds a space: no id,
    of another identity or of a caller without one, makes the same key."""
    limits = Limits()
    key = request_key("r", "alice")
    with pytest.raises(InvalidArgument):
        check_request_id(key, limits)
    assert request_key(key, None) == key  # the collision that refusing such an id prevents


# -- write_once: the write every mutation goes through ------------------------------------------

_TEXT = Answer(encode=lambda text: text, decode=lambda text: text)


class _Later(Pending):
    """An outcome that is not the request's answer yet."""


def _once(request_id: str, key: str = "k") -> Once:
    return Once.of("CreateResource", rq.CreateResource(key=key, value=b"v", request_id=request_id))


def _run_stores(tmp_path: Path, scenario: Callable[[SqliteStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_retry_gets_the_first_answer_without_running_again(tmp_path: Path) -> None:
    runs: list[str] = []

    def run(answer: str) -> Callable[[WriteTxn], str]:
        def body(txn: WriteTxn) -> str:
            runs.append(answer)
            return answer

        return body

    async def scenario(store: SqliteStore) -> None:
        assert await write_once(store, _once("r"), run("first"), _TEXT) == "first"
        assert await write_once(store, _once("r"), run("second"), _TEXT) == "first"
        with pytest.raises(RequestIdReused):
            await write_once(store, _once("r", key="other"), run("third"), _TEXT)
        # Without a request_id every write runs.
        assert await write_once(store, _once(""), run("fourth"), _TEXT) == "fourth"

    _run_stores(tmp_path, scenario)
    assert runs == ["first", "fourth"]


def test_a_failed_write_and_a_pending_outcome_are_not_remembered(tmp_path: Path) -> None:
    def fail(txn: WriteTxn) -> str:
        raise InvalidArgument("no")

    async def scenario(store: SqliteStore) -> None:
        with pytest.raises(InvalidArgument):
            await write_once(store, _once("r"), fail, _TEXT)
        later = await write_once(store, _once("r"), lambda txn: _Later(), _TEXT)
        assert isinstance(later, _Later)
        assert await write_once(store, _once("r"), lambda txn: "done", _TEXT) == "done"

    _run_stores(tmp_path, scenario)


def test_a_request_still_under_way_resumes_before_any_answer_is_looked_up(tmp_path: Path) -> None:
    """`resume` runs after the id is claimed; its outcome stands, and is not remembered."""
    resumed = _Later()

    async def scenario(store: SqliteStore) -> None:
        assert await write_once(store, _once("r"), lambda txn: "first", _TEXT) == "first"
        outcome = await write_once(store, _once("r"), lambda txn: "again", _TEXT, resume=lambda txn: resumed)
        assert outcome is resumed
        nothing = await write_once(store, _once("r"), lambda txn: "again", _TEXT, resume=lambda txn: None)
        assert nothing == "first"

    _run_stores(tmp_path, scenario)


# -- one answer per request id, over a MemoryStore on a ManualClock ------------------------------


def test_a_retried_create_is_answered_once_and_writes_once(core: Core) -> None:
    async def scenario() -> None:
        request = rq.CreateResource(key="k", value=b"v", request_id="r")
        first = await core.resources.create(request)
        core.clock.advance(1)
        assert await core.resources.create(request) == first
        assert await core.store.current_revision() == 1
        assert [e.revision for e in core.changes()] == [1]

    core.run(scenario)


def test_a_request_id_used_for_another_request_is_refused(core: Core) -> None:
    async def scenario() -> None:
        await core.resources.create(rq.CreateResource(key="k", value=b"v", request_id="r"))
        with pytest.raises(RequestIdReused) as reused:
            await core.resources.create(rq.CreateResource(key="k", value=b"other", request_id="r"))
        assert (reused.value.reason, reused.value.message, reused.value.metadata) == (
            "REQUEST_ID_REUSED",
            "request_id was already used for a different request",
            {"field": "request_id", "request_id": "r"},
        )
        with pytest.raises(RequestIdReused):  # another method is another request too
            await core.leases.grant(rq.GrantLease(ttl_seconds=10, request_id="r"))

    core.run(scenario)


def test_a_failed_request_is_not_remembered(core: Core) -> None:
    async def scenario() -> None:
        await core.resources.create(rq.CreateResource(key="k", value=b"1"))
        request = rq.UpdateResource(key="k", value=b"2", expected_version=2, request_id="r")
        with pytest.raises(VersionMismatch):
            await core.resources.update(request)
        await core.resources.update(rq.UpdateResource(key="k", value=b"1.5"))
        updated = await core.resources.update(request)  # evaluated afresh: now at version 2
        assert (updated.version, updated.value) == (3, b"2")

    core.run(scenario)


def test_request_ids_belong_to_the_callers_identity(core: Core) -> None:
    async def scenario() -> None:
        alice = await core.resources.create(
            rq.CreateResource(key="a", value=b"v", request_id="r", owner="alice")
        )
        bob = await core.resources.create(rq.CreateResource(key="b", value=b"v", request_id="r", owner="bob"))
        assert (alice.key, bob.key) == ("a", "b")
        assert await core.store.answered(request_key("r", "alice"))
        assert not await core.store.answered("r")

    core.run(scenario)


def test_an_answer_is_forgotten_after_its_retention() -> None:
    core = make_core(request_id_retention_seconds=60)

    async def scenario() -> None:
        request = rq.CreateResource(key="k", value=b"v", request_id="r")
        await core.resources.create(request)
        core.clock.advance(60)
        await core.resources.create(rq.CreateResource(key="other", value=b"v"))  # a commit prunes
        assert await core.store.answered("r")  # exactly at its retention: still kept
        core.clock.advance(us=1)
        await core.resources.create(rq.CreateResource(key="another", value=b"v"))
        assert not await core.store.answered("r")
        with pytest.raises(ResourceExists):  # the retry is a new request now
            await core.resources.create(request)

    core.run(scenario)


def test_a_retried_release_gets_its_first_answer_not_lock_not_held(core: Core) -> None:
    async def scenario() -> None:
        view = await core.locks.acquire(rq.AcquireLock(name="m", ttl_seconds=10))
        request = rq.ReleaseLock(name="m", token=view.state.token, request_id="r")
        first = await core.locks.release(request)
        assert await core.locks.release(request) == first
        with pytest.raises(LockNotHeld):
            await core.locks.release(rq.ReleaseLock(name="m", token=view.state.token))

    core.run(scenario)


def test_a_retried_revoke_gets_its_first_answer(core: Core) -> None:
    async def scenario() -> None:
        lease = await core.leases.grant(rq.GrantLease(ttl_seconds=10, request_id="g"))
        assert await core.leases.grant(rq.GrantLease(ttl_seconds=10, request_id="g")) == lease
        request = rq.RevokeLease(lease_id=lease.lease_id, request_id="r")
        ended = await core.leases.revoke(request)
        assert await core.leases.revoke(request) == ended
        with pytest.raises(LeaseNotFound):
            await core.leases.revoke(rq.RevokeLease(lease_id=lease.lease_id))

    core.run(scenario)
