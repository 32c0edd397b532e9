"""Resources over a real SqliteStore: a CompareAndSet that the state in memory already refutes
is answered without queueing a write body; the answer is the writer's, field for field."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lockservice.core import requests as rq
from lockservice.core.limits import Limits
from lockservice.core.resources import Resources
from lockservice.errors import ValueMismatch, VersionMismatch
from lockservice.model import ExpectAbsent, ExpectValue, ExpectVersion
from lockservice.store.sqlite import SqliteStore


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
