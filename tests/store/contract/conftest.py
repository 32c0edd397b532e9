"""The store contract suite: every test runs on MemoryStore, SqliteStore and PostgresStore.

A test is a scenario `async def (store) -> None` handed to `stores.run`, which opens a fresh
store of the kind under test (with the options given), runs it on a new event loop and closes
the store. PostgreSQL variants get a database of their own (`tests.conftest.create_database`)
and are marked `postgres`; in CI an unreachable PostgreSQL fails them instead of skipping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from lockservice.model import ChangeEvent
from lockservice.store.base import Notice, Store
from lockservice.store.memory import MemoryStore
from lockservice.store.postgres import PostgresStore
from lockservice.store.sqlite import SqliteStore
from tests.conftest import create_database, recycle_database, require_postgres

Scenario = Callable[[Store], Awaitable[None]]


class Stores:
    """Opens stores of one kind: `memory`, `sqlite` or `postgres`."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self._directory = directory
        self._opened = 0
        self._databases: list[str] = []

    async def open(self, *, history_versions: int = 10, watch_history_revisions: int = 10_000) -> Store:
        """A fresh, empty store keeping `history_versions` versions of a key and the events of
        `watch_history_revisions` revisions. SQLite's commits are not synced to disk: the
        contract is behaviour; durability is SQLite's own test and the crash tests'."""
        self._opened += 1
        if self.kind == "memory":
            return MemoryStore(
                history_versions=history_versions, watch_history_revisions=watch_history_revisions
            )
        options = {"history_versions": history_versions, "watch_history_revisions": watch_history_revisions}
        if self.kind == "sqlite":
            path = str(self._directory / f"store-{self._opened}.db")
            return await SqliteStore.open(path, durable=False, **options)
        url = create_database()
        self._databases.append(url)
        return await PostgresStore.open(url, **options)

    def release(self) -> None:
        """Empties this test's PostgreSQL databases for the next test. Only its own: the
        session's other databases (a shared server's among them) are still in use."""
        while self._databases:
            recycle_database(self._databases.pop())

    def run(self, scenario: Scenario, **options: int) -> None:
        async def main() -> None:
            store = await self.open(**options)
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "postgres":
        require_postgres()
    return kind


@pytest.fixture
def stores(store_kind: str, tmp_path: Path) -> Iterator[Stores]:
    opened = Stores(store_kind, tmp_path)
    yield opened
    opened.release()


class Heard:
    """A listener that keeps every notice; `await heard.through(revision)` returns once the
    changes up to `revision` have arrived. PostgreSQL delivers changes after the commit (every
    replica reads them back from the database), the other stores before the writer resumes."""

    def __init__(self, store: Store) -> None:
        self.notices: list[Notice] = []
        self._arrived = asyncio.Event()
        store.subscribe(self._hear)

    def _hear(self, notices: list[Notice]) -> None:
        self.notices.extend(notices)
        self._arrived.set()

    def changes(self) -> list[ChangeEvent]:
        return [notice for notice in self.notices if isinstance(notice, ChangeEvent)]

    async def through(self, revision: int) -> None:
        async with asyncio.timeout(_DELIVERY_SECONDS):
            while not any(change.revision >= revision for change in self.changes()):
                self._arrived.clear()
                await self._arrived.wait()


# How long a commit's changes may take to reach a listener before the test fails (PostgreSQL's
# are relayed by LISTEN/NOTIFY; under load that can take a while, never this long).
_DELIVERY_SECONDS = 30.0
