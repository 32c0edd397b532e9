"""The recipes hold their invariants with many contenders at once against a real server: one
leader at a time, at most N semaphore holders, never a writer alongside anyone; fencing tokens
strictly increase from one holder to the next. Each hold is recorded as an interval (taken after
the acquisition returned, ended before the release began) and the intervals are checked."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from lockservice_client import AsyncClient, Client, HeldLock, LockHeld, LockLost, StaleFence
from lockservice_client.recipes import (
    AsyncElection,
    AsyncReadWriteLock,
    AsyncSemaphore,
    Election,
    Leader,
    ReadWriteLock,
    Semaphore,
)
from tests.conftest import ServerProcess

HOLD_SECONDS = 0.02  # work done while holding, so that contenders really queue
ROUNDS = 3


@dataclass(frozen=True)
class Hold:
    who: str
    kind: str
    lock_name: str
    token: int
    start: float
    end: float


class Recorder:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.holds: list[Hold] = []

    def hold(self, who: str, kind: str, held: HeldLock, write: tuple[Client, str] | None = None) -> None:
        """Records `held` as an interval; inside it, `write` = (client, key) makes a fenced write."""
        start = time.monotonic()
        if write is not None:
            client, key = write
            client.put(key, b"v", fence=held.fence)
        time.sleep(HOLD_SECONDS)
        self.record(Hold(who, kind, held.name, held.token, start, time.monotonic()))

    def record(self, hold: Hold) -> None:
        with self._mutex:
            self.holds.append(hold)


def _run_all(contenders: dict[str, Callable[[], None]]) -> None:
    with ThreadPoolExecutor(max_workers=len(contenders)) as pool:
        for future in [pool.submit(run) for run in contenders.values()]:
            future.result(timeout=120)


def _most_at_once(holds: list[Hold]) -> int:
    """The largest number of overlapping intervals (an end at the same instant as a start first)."""
    edges = sorted([(hold.start, 1) for hold in holds] + [(hold.end, -1) for hold in holds])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _overlapping(hold: Hold, holds: list[Hold]) -> list[Hold]:
    return [
        other for other in holds if other is not hold and other.start < hold.end and hold.start < other.end
    ]


def _one_at_a_time_with_rising_tokens(holds: list[Hold]) -> None:
    ordered = sorted(holds, key=lambda hold: hold.start)
    for before, after in itertools.pairwise(ordered):
        assert after.start > before.end, (before, after)
        assert after.token > before.token, (before, after)


def test_election_has_one_leader_at_a_time_and_observers_see_every_term(
    server: ServerProcess, prefix: str
) -> None:
    recorder = Recorder()
    observed: list[Leader | None] = []
    watching = threading.Event()
    expected_terms = 5 * ROUNDS

    def observer() -> None:
        with Client(server.address) as client:
            for leader in Election(client, f"{prefix}/office").observe():
                observed.append(leader)
                watching.set()
                if leader is None and len(observed) > 2 * expected_terms - 1:
                    return  # every term began and ended

    def contender(who: str) -> Callable[[], None]:
        def run() -> None:
            with Client(server.address) as client:
                election = Election(client, f"{prefix}/office", ttl_seconds=5)
                for _ in range(ROUNDS):
                    with election.campaign(who, wait=60) as leadership:
                        assert election.leader() == Leader(who, leadership.token, leadership.lease_id)
                        recorder.hold(who, "leader", leadership)

        return run

    watcher = threading.Thread(target=observer, daemon=True)
    watcher.start()
    assert watching.wait(30)
    _run_all({f"candidate-{n}": contender(f"candidate-{n}") for n in range(5)})
    watcher.join(30)
    assert not watcher.is_alive(), observed

    assert len(recorder.holds) == expected_terms
    _one_at_a_time_with_rising_tokens(recorder.holds)
    # Observers see each term begin (its leader) and end (None), in order, none missed.
    terms = sorted(recorder.holds, key=lambda hold: hold.start)
    assert observed == [None] + [
        state
        for hold in terms
        for state in (Leader(hold.who, hold.token, observed_lease(observed, hold.token)), None)
    ]


def observed_lease(observed: list[Leader | None], token: int) -> str:
    (lease_id,) = {leader.lease_id for leader in observed if leader is not None and leader.token == token}
    return lease_id


def test_a_deposed_leaders_fenced_write_is_refused_and_it_learns_it_lost(client: Client, prefix: str) -> None:
    election = Election(client, f"{prefix}/office", ttl_seconds=30)
    lost: list[HeldLock] = []
    with (
        pytest.raises(StaleFence),
        election.campaign("first", on_lost=lost.append) as first,
    ):
        client.revoke_lease(first.lease_id)  # as if its lease had expired while it was paused
        with election.campaign("second", wait=10) as second:
            assert election.leader() == Leader("second", second.token, second.lease_id)
            assert second.token > first.token
            client.put(f"{prefix}/state", b"second", fence=second.fence)
            client.put(f"{prefix}/state", b"first", fence=first.fence)
    assert [held.token for held in lost] == [first.token]
    assert client.get(f"{prefix}/state").value == b"second"
    assert election.leader() is None


def test_semaphore_has_at_most_its_limit_of_holders(server: ServerProcess, prefix: str) -> None:
    recorder = Recorder()
    limit = 3

    def contender(who: str) -> Callable[[], None]:
        def run() -> None:
            with Client(server.address) as client:
                semaphore = Semaphore(client, f"{prefix}/pool", limit, ttl_seconds=5, probe_seconds=0.1)
                for _ in range(ROUNDS):
                    with semaphore.acquire(wait=60, holder=who) as held:
                        recorder.hold(who, "holder", held, write=(client, f"{prefix}/by-{who}"))

        return run

    _run_all({f"worker-{n}": contender(f"worker-{n}") for n in range(8)})
    assert len(recorder.holds) == 8 * ROUNDS
    assert _most_at_once(recorder.holds) <= limit
    assert {hold.lock_name for hold in recorder.holds} <= {f"{prefix}/pool/slot-{n}" for n in range(limit)}
    for slot in {hold.lock_name for hold in recorder.holds}:
        _one_at_a_time_with_rising_tokens([hold for hold in recorder.holds if hold.lock_name == slot])


def test_semaphore_refuses_when_full_and_no_wait(client: Client, prefix: str) -> None:
    semaphore = Semaphore(client, f"{prefix}/pool", 2)
    with semaphore.acquire(holder="a") as a, semaphore.acquire(holder="b") as b:
        assert {a.name, b.name} == {f"{prefix}/pool/slot-0", f"{prefix}/pool/slot-1"}
        with pytest.raises(LockHeld), semaphore.acquire(wait=0, holder="c"):
            pass
    with semaphore.acquire(wait=0, holder="c") as c:  # the full semaphore's slots were released
        assert c.holder == "c"


def test_read_write_lock_never_has_a_writer_with_anyone(server: ServerProcess, prefix: str) -> None:
    recorder = Recorder()
    max_readers = 4

    def reader(who: str) -> Callable[[], None]:
        def run() -> None:
            with Client(server.address) as client:
                lock = ReadWriteLock(client, f"{prefix}/doc", max_readers=max_readers, ttl_seconds=5)
                for _ in range(ROUNDS):
                    with lock.read(wait=60, holder=who) as held:
                        recorder.hold(who, "reader", held)

        return run

    def writer(who: str) -> Callable[[], None]:
        def run() -> None:
            with Client(server.address) as client:
                lock = ReadWriteLock(client, f"{prefix}/doc", max_readers=max_readers, ttl_seconds=5)
                for _ in range(ROUNDS):
                    with lock.write(wait=60, holder=who) as held:
                        recorder.hold(who, "writer", held, write=(client, f"{prefix}/doc"))

        return run

    contenders = {f"reader-{n}": reader(f"reader-{n}") for n in range(5)}
    contenders |= {f"writer-{n}": writer(f"writer-{n}") for n in range(2)}
    _run_all(contenders)
    writes = [hold for hold in recorder.holds if hold.kind == "writer"]
    reads = [hold for hold in recorder.holds if hold.kind == "reader"]
    assert (len(writes), len(reads)) == (2 * ROUNDS, 5 * ROUNDS)
    for write in writes:
        assert _overlapping(write, recorder.holds) == [], write
    assert _most_at_once(reads) <= max_readers
    _one_at_a_time_with_rising_tokens(writes)


def test_a_writer_that_cannot_get_in_leaves_the_readers_alone(client: Client, prefix: str) -> None:
    lock = ReadWriteLock(client, f"{prefix}/doc", max_readers=2)
    with lock.read(holder="reader") as reading:
        with pytest.raises(LockHeld), lock.write(wait=0.2, holder="writer"):
            pass
        with lock.read(wait=0, holder="second reader") as second:  # the writer let go of its slot
            assert second.name != reading.name
    with lock.write(wait=0, holder="writer") as writing:
        with pytest.raises(LockHeld), lock.read(wait=0, holder="late reader"):
            pass
        assert writing.name == f"{prefix}/doc/readers/slot-0"
    with pytest.raises(LockLost), lock.read(holder="reader") as lost_read:
        client.revoke_lease(lost_read.lease_id)


def test_async_recipes_hold_the_same_invariants(server: ServerProcess, prefix: str) -> None:
    """Many contenders in one event loop: one leader at a time (observed, every term), at most
    `limit` semaphore holders, no writer alongside anyone; tokens rise from holder to holder."""
    recorder = Recorder()

    async def in_office(client: AsyncClient, who: str) -> None:
        election = AsyncElection(client, f"{prefix}/office", ttl_seconds=5)
        for _ in range(ROUNDS):
            async with election.campaign(who, wait=60) as leadership:
                assert await election.leader() == Leader(who, leadership.token, leadership.lease_id)
                await _async_hold(recorder, who, "leader", leadership)

    async def in_pool(client: AsyncClient, who: str) -> None:
        semaphore = AsyncSemaphore(client, f"{prefix}/pool", 2, ttl_seconds=5, probe_seconds=0.1)
        for _ in range(ROUNDS):
            async with semaphore.acquire(wait=60, holder=who) as held:
                await client.put(f"{prefix}/by-{who}", b"v", fence=held.fence)
                await _async_hold(recorder, who, "holder", held)

    async def on_doc(client: AsyncClient, who: str, writes: bool) -> None:
        lock = AsyncReadWriteLock(client, f"{prefix}/doc", max_readers=3, ttl_seconds=5)
        for _ in range(ROUNDS):
            async with lock.write(wait=60, holder=who) if writes else lock.read(wait=60, holder=who) as held:
                await _async_hold(recorder, who, "writer" if writes else "reader", held)

    async def scenario() -> list[Leader | None]:
        async with AsyncClient(server.address) as client:
            observed: list[Leader | None] = []
            observing = AsyncElection(client, f"{prefix}/office").observe()
            observed.append(await anext(observing))  # observing from here on
            await asyncio.gather(
                *(in_office(client, f"candidate-{n}") for n in range(4)),
                *(in_pool(client, f"worker-{n}") for n in range(5)),
                *(on_doc(client, f"reader-{n}", False) for n in range(4)),
                *(on_doc(client, f"writer-{n}", True) for n in range(2)),
            )
            while len(observed) < 1 + 2 * 4 * ROUNDS:
                observed.append(await asyncio.wait_for(anext(observing), timeout=30))
            await observing.aclose()
            return observed

    observed = asyncio.run(scenario())
    terms = sorted((hold for hold in recorder.holds if hold.kind == "leader"), key=lambda hold: hold.start)
    assert len(terms) == 4 * ROUNDS
    _one_at_a_time_with_rising_tokens(terms)
    assert [leader.token if leader else None for leader in observed] == [None] + [
        state for hold in terms for state in (hold.token, None)
    ]
    pool = [hold for hold in recorder.holds if hold.kind == "holder"]
    assert len(pool) == 5 * ROUNDS
    assert _most_at_once(pool) <= 2
    for slot in {hold.lock_name for hold in pool}:
        _one_at_a_time_with_rising_tokens([hold for hold in pool if hold.lock_name == slot])
    doc = [hold for hold in recorder.holds if hold.kind in ("reader", "writer")]
    writes = [hold for hold in doc if hold.kind == "writer"]
    assert (len(writes), len(doc)) == (2 * ROUNDS, 6 * ROUNDS)
    for write in writes:
        assert _overlapping(write, doc) == [], write
    assert _most_at_once([hold for hold in doc if hold.kind == "reader"]) <= 3


async def _async_hold(recorder: Recorder, who: str, kind: str, held: HeldLock) -> None:
    start = time.monotonic()
    await asyncio.sleep(HOLD_SECONDS)
    recorder.record(Hold(who, kind, held.name, held.token, start, time.monotonic()))
