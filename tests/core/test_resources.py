"""Conditional writes that the key's latest durable state already refutes are answered without
queueing a write body (`Capabilities.durable_state`); the answer is the writer's, field for
field. Over a MemoryStore with and without the capability, and a real SqliteStore for the wait
on a committing winner and the losers within one batch."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.resources import Resources
from lockservice.errors import LockserviceError, ValueMismatch, VersionMismatch
from lockservice.model import ExpectAbsent, ExpectEtag, ExpectValue, ExpectVersion, Fence, Resource
from lockservice.store.base import Capabilities, WriteTxn
from lockservice.store.memory import ManualClock, MemoryStore
from lockservice.store.sqlite import SqliteStore

T = TypeVar("T")


def test_a_known_stale_compare_and_set_never_reaches_the_writer(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        resources = Resources(store, Limits())
        try:
            await resources.create(rq.CreateResource(key="k", value=b"1"))
            await resources.compare_and_set(
                rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1))
            )
            bodies = store.committed_bodies
            with pytest.raises(VersionMismatch) as stale:
                await resources.compare_and_set(
                    rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1))
                )
            with pytest.raises(ValueMismatch) as wrong_value:
                await resources.compare_and_set(
                    rq.CompareAndSet(key="k", value=b"x", expectation=ExpectValue(b"1"))
                )
            with pytest.raises(ValueMismatch):
                await resources.compare_and_set(
                    rq.CompareAndSet(key="k", value=b"x", expectation=ExpectAbsent())
                )
            assert store.committed_bodies == bodies  # all three answered from memory
            conflict = stale.value.conflict
            assert conflict is not None and conflict.current is not None
            assert (conflict.current.version, conflict.current.value, conflict.expected) == (
                2,
                b"2",
                "version 1",
            )
            assert conflict.revision == await store.current_revision() == 2
            assert stale.value.metadata == {"key": "k", "current_version": "2"}
            assert wrong_value.value.message == (
                "k is at version 2 and does not match the expected value of 1 bytes"
            )
            # A fresh expectation goes to the writer and wins.
            third = await resources.compare_and_set(
                rq.CompareAndSet(key="k", value=b"3", expectation=ExpectVersion(2))
            )
            assert (third.version, store.committed_bodies) == (3, bodies + 1)
        finally:
            await store.close()

    asyncio.run(scenario())


# -- the same refusal on both paths (MemoryStore: the capability on, and off) ------------------

Write = Callable[[Resources], Awaitable[object]]

_STALE_WRITES: dict[str, Write] = {
    "cas version": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1))
    ),
    "cas etag": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectEtag("e"))
    ),
    "cas value": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectValue(b"1"))
    ),
    "cas absent": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectAbsent())
    ),
    "cas missing key": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="gone", value=b"x", expectation=ExpectVersion(1))
    ),
    "update version": lambda r: r.update(rq.UpdateResource(key="k", value=b"x", expected_version=1)),
    "update etag": lambda r: r.update(rq.UpdateResource(key="k", value=b"x", expected_etag="e")),
    "update missing key": lambda r: r.update(rq.UpdateResource(key="gone", value=b"x", expected_version=1)),
    "update missing key allowed": lambda r: r.update(
        rq.UpdateResource(key="gone", value=b"x", expected_version=1, allow_missing=True)
    ),
    "delete version": lambda r: r.delete(rq.DeleteResource(key="k", expected_version=1)),
    "cas with a fresh request_id": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1), request_id="fresh")
    ),
    "update with a fresh request_id": lambda r: r.update(
        rq.UpdateResource(key="k", value=b"x", expected_version=1, request_id="fresh")
    ),
    "delete missing key": lambda r: r.delete(rq.DeleteResource(key="gone", expected_version=3)),
}


class _CountingStore(MemoryStore):
    """A MemoryStore that counts the bodies queued for its writer."""

    def __init__(self, durable_state: bool) -> None:
        super().__init__(clock=ManualClock())
        self.writes = 0
        if not durable_state:
            self.capabilities = Capabilities()

    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        self.writes += 1
        return await super().write(body)


async def _refusal(durable_state: bool, write: Write) -> tuple[LockserviceError, int]:
    """The error `write` gets on a key moved on to version 2 (and a key created then deleted),
    and how many bodies it queued."""
    store = _CountingStore(durable_state)
    resources = Resources(store, Limits())
    await resources.create(rq.CreateResource(key="k", value=b"1"))
    await resources.compare_and_set(rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1)))
    await resources.create(rq.CreateResource(key="gone", value=b"1"))
    await resources.delete(rq.DeleteResource(key="gone"))
    before = store.writes
    with pytest.raises(LockserviceError) as refused:
        await write(resources)
    return refused.value, store.writes - before


def _fields(error: LockserviceError) -> tuple[object, ...]:
    return (type(error), error.reason, error.message, error.metadata, error.conflict)


@pytest.mark.parametrize("name", sorted(_STALE_WRITES))
def test_a_stale_conditional_write_is_refused_from_memory_as_the_writer_refuses_it(name: str) -> None:
    async def scenario() -> None:
        from_memory, queued_with = await _refusal(True, _STALE_WRITES[name])
        from_writer, queued_without = await _refusal(False, _STALE_WRITES[name])
        assert _fields(from_memory) == _fields(from_writer)
        assert (queued_with, queued_without) == (0, 1)

    asyncio.run(scenario())


_WRITER_ONLY: dict[str, Write] = {
    "fence": lambda r: r.compare_and_set(
        rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1), fence=Fence("no-such-lock", 1))
    ),
    "delete with fence": lambda r: r.delete(
        rq.DeleteResource(key="k", expected_version=1, fence=Fence("no-such-lock", 1))
    ),
}


@pytest.mark.parametrize("name", sorted(_WRITER_ONLY))
def test_a_write_with_a_fence_is_always_decided_by_the_writer(name: str) -> None:
    """A stale fence is the answer before a mismatch, and only the writer knows the lock."""

    async def scenario() -> None:
        from_memory, queued = await _refusal(True, _WRITER_ONLY[name])
        from_writer, _ = await _refusal(False, _WRITER_ONLY[name])
        assert _fields(from_memory) == _fields(from_writer)
        assert queued == 1

    asyncio.run(scenario())


def test_a_retry_of_a_write_that_succeeded_gets_its_first_answer_from_the_writer() -> None:
    async def scenario() -> None:
        store = _CountingStore(True)
        resources = Resources(store, Limits())
        await resources.create(rq.CreateResource(key="k", value=b"1"))
        request = rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1), request_id="r")
        first = await resources.compare_and_set(request)
        await resources.compare_and_set(rq.CompareAndSet(key="k", value=b"3", expectation=ExpectVersion(2)))
        before = store.writes
        assert await resources.compare_and_set(request) == first
        assert store.writes - before == 1
        reused = rq.UpdateResource(key="k", value=b"x", expected_version=1, request_id="r")
        with pytest.raises(LockserviceError) as refused:
            await resources.update(reused)
        assert (refused.value.reason, store.writes - before) == ("REQUEST_ID_REUSED", 2)

    asyncio.run(scenario())


def test_a_fresh_expectation_and_a_recreated_key_go_to_the_writer() -> None:
    """Versions restart at 1 when a key is deleted and created again: an expectation of
    version 1 then holds (as in the writer) and the write is queued, and wins."""

    async def scenario() -> None:
        store = _CountingStore(True)
        resources = Resources(store, Limits())
        await resources.create(rq.CreateResource(key="k", value=b"1"))
        await resources.delete(rq.DeleteResource(key="k"))
        await resources.create(rq.CreateResource(key="k", value=b"again"))
        before = store.writes
        written = await resources.compare_and_set(
            rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1))
        )
        assert (written.version, written.value, store.writes - before) == (2, b"2", 1)

    asyncio.run(scenario())


# -- SQLite: a loser that arrives while the winner commits ---------------------------------------


@dataclass
class _HeldCommit:
    """A SqliteStore holding key "k" at version 1 whose next commit is held after its COMMIT,
    before its callers are answered, until `release` is set."""

    store: SqliteStore
    resources: Resources
    committed: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def wait_until_held(self) -> None:
        assert await asyncio.get_running_loop().run_in_executor(None, self.committed.wait, 10)

    def _hold(self, bodies: int, seconds: float) -> None:
        if not self.committed.is_set():
            self.committed.set()
            self.release.wait(10)


@contextlib.asynccontextmanager
async def _next_commit_held(tmp_path: Path) -> AsyncIterator[_HeldCommit]:
    store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
    held = _HeldCommit(store, Resources(store, Limits()))
    try:
        await held.resources.create(rq.CreateResource(key="k", value=b"1"))
        assert store.capabilities.observe_commits is not None
        store.capabilities.observe_commits(held._hold)
        yield held
    finally:
        held.release.set()
        await store.close()


def test_a_loser_arriving_while_the_winner_commits_waits_for_it_and_never_reaches_the_writer(
    tmp_path: Path,
) -> None:
    """The winner's batch has run and is committing (held here after its COMMIT, before its
    callers are answered): a CompareAndSet expecting the version the winner replaces waits for
    the winner to be acknowledged, then gets the writer's refusal carrying the winner's state.
    No body of it is queued: the winner is the only body committed."""

    async def scenario() -> None:
        async with _next_commit_held(tmp_path) as held:
            resources, bodies = held.resources, held.store.committed_bodies
            winner = asyncio.ensure_future(
                resources.compare_and_set(rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1)))
            )
            await held.wait_until_held()
            loser = asyncio.ensure_future(
                resources.compare_and_set(rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1)))
            )
            for _ in range(10):
                await asyncio.sleep(0)
            assert not loser.done()  # waits for the winner's durability, never answers before it
            held.release.set()
            written = await winner
            with pytest.raises(VersionMismatch) as refused:
                await loser
            assert held.store.committed_bodies == bodies + 1
            conflict = refused.value.conflict
            assert conflict is not None
            assert (conflict.current, conflict.revision, conflict.expected) == (
                written,
                written.mod_revision,
                "version 1",
            )
            assert refused.value.metadata == {"key": "k", "current_version": "2"}

    asyncio.run(scenario())


def test_a_retry_arriving_while_its_first_attempt_commits_gets_the_first_answer(tmp_path: Path) -> None:
    """The first attempt is committing (held after its COMMIT, before its caller is answered);
    its retry, same request_id, finds the key moved on once the commit is durable, and is not
    refused from memory: the writer runs it after the first and returns the first's answer."""

    async def scenario() -> None:
        async with _next_commit_held(tmp_path) as held:
            request = rq.CompareAndSet(key="k", value=b"2", expectation=ExpectVersion(1), request_id="r")
            first = asyncio.ensure_future(held.resources.compare_and_set(request))
            await held.wait_until_held()
            retry = asyncio.ensure_future(held.resources.compare_and_set(request))
            for _ in range(10):
                await asyncio.sleep(0)
            held.release.set()
            written = await first
            assert (await retry, written.version) == (written, 2)

    asyncio.run(scenario())


def test_losers_within_one_batch_are_decided_without_a_statement(tmp_path: Path) -> None:
    """Bodies queued together: the first compare wins, the others read the state it wrote in
    the batch and are refused with it, each with the refusal a later batch would give."""

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "db.sqlite"))
        resources = Resources(store, Limits())
        try:
            first = await resources.create(rq.CreateResource(key="k", value=b"1"))
            calls = [
                resources.compare_and_set(
                    rq.CompareAndSet(key="k", value=str(n).encode(), expectation=ExpectVersion(1))
                )
                for n in range(16)
            ]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            wins = [outcome for outcome in outcomes if isinstance(outcome, Resource)]
            assert len(wins) == 1 and wins[0].version == 2
            losses = [outcome for outcome in outcomes if not isinstance(outcome, Resource)]
            assert all(isinstance(loss, VersionMismatch) for loss in losses) and len(losses) == 15
            late, _ = await asyncio.gather(
                resources.compare_and_set(
                    rq.CompareAndSet(key="k", value=b"x", expectation=ExpectVersion(1))
                ),
                asyncio.sleep(0),
                return_exceptions=True,
            )
            assert isinstance(late, VersionMismatch)
            for loss in losses:
                assert isinstance(loss, VersionMismatch)
                assert _fields(loss) == _fields(late)
            assert first.version == 1
        finally:
            await store.close()

    asyncio.run(scenario())
