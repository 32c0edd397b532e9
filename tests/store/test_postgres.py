"""PostgresStore on a real database: which failures a body is re-run for, and which not.

Backend-specific because re-running bodies on a conflict is PostgreSQL's design (SQLite runs
one body at a time and never conflicts).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

import psycopg
import pytest

from lockservice.model import Resource
from lockservice.store.base import WriteTxn
from lockservice.store.postgres import PostgresStore, SecondAnswer
from tests.conftest import POSTGRES_ADMIN_URL, create_database, postgres_available

T = TypeVar("T")

pytestmark = pytest.mark.postgres


@pytest.fixture
def url() -> str:
    if not postgres_available():
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI every PostgreSQL test must run")
        pytest.skip(message)
    return create_database()


def _counted(body: Callable[[WriteTxn], T], runs: list[int]) -> Callable[[WriteTxn], T]:
    def counted(txn: WriteTxn) -> T:
        runs.append(1)
        return body(txn)

    return counted


def test_a_second_answer_for_one_request_is_a_bug_raised_at_once(url: str) -> None:
    """Not retried as a transient conflict (which took 30 attempts, then STORE_UNAVAILABLE)."""

    async def scenario() -> None:
        store = await PostgresStore.open(url)
        try:
            await store.write(lambda txn: txn.save_answer("r", "print", "first"))
            runs: list[int] = []
            with pytest.raises(SecondAnswer, match="a second answer for one request"):
                await store.write(_counted(lambda txn: txn.save_answer("r", "print", "second"), runs))
            assert runs == [1]
            answer = await store.write(lambda txn: txn.get_answer("r"))
            assert answer is not None and answer.answer == "first"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_bodies_inserting_one_new_row_at_once_are_re_run_until_one_wins(url: str) -> None:
    """The unique violation on any other table is a race, still re-run: each loser sees the row."""

    def create_once(txn: WriteTxn) -> Resource:
        current = txn.get("k")
        if current is not None:
            return current
        revision = txn.next_revision()
        resource = Resource("k", b"v", "text/plain", 1, revision, revision, txn.now_us, txn.now_us)
        txn.put(resource)
        return resource

    async def scenario() -> None:
        store = await PostgresStore.open(url)
        try:
            runs: list[int] = []
            created = await asyncio.gather(*(store.write(_counted(create_once, runs)) for _ in range(10)))
            assert len({(r.create_revision, r.version) for r in created}) == 1
            assert len(runs) >= 10
            assert await store.current_revision() == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_conflict_in_a_queued_write_leaves_the_connection_usable(url: str) -> None:
    """A body's writes travel in one pipeline with its COMMIT; when one of them fails (here: a
    row inserted by someone else after the body found it missing), the body is re-run, and the
    connection keeps working afterwards, however often that happens on it (a statement must not
    be left half-prepared by the aborted pipeline: "prepared statement does not exist")."""

    def racing_create(key: str, runs: list[int]) -> Callable[[WriteTxn], Resource]:
        def body(txn: WriteTxn) -> Resource:
            runs.append(1)
            current = txn.get(key)
            revision = txn.next_revision()
            version = 1 if current is None else current.version + 1
            resource = Resource(key, b"v", "text/plain", version, revision, revision, txn.now_us, txn.now_us)
            if len(runs) == 1:  # someone else creates the key before this body commits
                with psycopg.connect(url, autocommit=True) as other:
                    other.execute(
                        "INSERT INTO resources (key, value, content_type, version, create_revision, "
                        "mod_revision, create_time_us, update_time_us, lease_id) "
                        "VALUES (%s, '', 'text/plain', 1, 0, 0, 0, 0, '')",
                        (key,),
                    )
            txn.put(resource)
            return resource

        return body

    async def scenario() -> None:
        store = await PostgresStore.open(url, pool_size=1)
        try:
            for index in range(12):
                runs: list[int] = []
                written = await store.write(racing_create(f"k{index}", runs))
                assert (len(runs), written.version) == (2, 2)
            assert await store.current_revision() == 12
        finally:
            await store.close()

    asyncio.run(scenario())
