"""Opening a store of either backend in a test: SQLite in the test's directory, PostgreSQL in a
fresh database (skipped when PostgreSQL is not reachable, failed in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lockservice.store.base import Store
from lockservice.store.postgres import PostgresStore
from lockservice.store.sqlite import SqliteStore
from tests.conftest import POSTGRES_ADMIN_URL, create_database, postgres_available


async def open_store(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return await SqliteStore.open(str(tmp_path / "db.sqlite"))
    if not postgres_available():
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI every PostgreSQL test must run")
        pytest.skip(message)
    return await PostgresStore.open(create_database())
