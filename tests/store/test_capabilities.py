"""What each store declares it reports about itself (`Capabilities`), and that each declared
report works: callers test the declaration, never the store's class."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lockservice.store.base import WriteTxn
from tests.conftest import BACKENDS
from tests.store.backends import open_store

# Which reports each backend declares: an embedded file is never unreachable, and only SQLite
# group-commits (so counts commits apart from bodies).
DECLARED = {
    "sqlite": {"watch_availability": False, "observe_commits": True, "stats": True, "commit_counts": True},
    "postgres": {"watch_availability": True, "observe_commits": True, "stats": True, "commit_counts": False},
}


def _answer(txn: WriteTxn) -> None:
    txn.save_answer("r", "print", "first")


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_store_declares_its_reports_and_they_work(backend: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(backend, tmp_path)
        try:
            capabilities = store.capabilities
            declared = {name: getattr(capabilities, name) is not None for name in DECLARED[backend]}
            assert declared == DECLARED[backend]
            assert capabilities.observe_commits is not None and capabilities.stats is not None
            observed: list[int] = []
            capabilities.observe_commits(lambda bodies, seconds: observed.append(bodies))
            await store.write(_answer)
            assert observed == [1]
            if capabilities.commit_counts is not None:
                assert capabilities.commit_counts() == (1, 1)
            stats = await capabilities.stats()
            assert (stats["leases"], stats["locks_held"], stats["waiters"]) == (0, 0, 0)
            assert stats["size_bytes"] > 0
        finally:
            await store.close()

    asyncio.run(scenario())
