"""What a schema migration is called and how its application is logged, for both stores.

A migration is a function of the store's connection named `_v<N>_<what>` (its version and what
it adds); `migration_name` is that name without the leading underscore. Every migration applied
is logged once its transaction commits: one line with the store, version, name and duration, so
an operator sees when a start (or `lockservice migrate`) changed the schema. Only where logging
is configured (`lockservice.logs`: a server, the `migrate` verb): a library caller's standard
output stays its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from lockservice.errors import StoreUnavailable

__all__ = ["Applied", "apply_pending", "log_applied", "migration_name"]

_log = structlog.get_logger("lockservice.store.migrations")

Target = TypeVar("Target")


def migration_name(migration: Callable[[Any], None]) -> str:
    return migration.__name__.lstrip("_")


@dataclass(frozen=True, slots=True)
class Applied:
    """One migration applied: the schema `version` it brought the store to."""

    version: int
    migration: Callable[[Any], None]
    seconds: float

    @property
    def name(self) -> str:
        return migration_name(self.migration)


def log_applied(store: str, applied: list[Applied]) -> None:
    if not structlog.is_configured():
        return
    for step in applied:
        _log.info(
            "schema migration applied",
            store=store,
            version=step.version,
            name=step.name,
            duration_ms=round(step.seconds * 1000, 3),
        )


def apply_pending(
    current: int, migrations: Sequence[Callable[[Target], None]], target: Target
) -> list[Applied]:
    """Applies `migrations` after schema version `current` to `target`, in order, inside the
    caller's transaction, timing each; StoreUnavailable when `current` is newer than them (a
    database written by a newer lockservice)."""
    if current > len(migrations):
        raise StoreUnavailable(
            f"the database schema is version {current}, newer than this lockservice "
            f"understands ({len(migrations)}); upgrade lockservice"
        )
    applied: list[Applied] = []
    for version in range(current, len(migrations)):
        started = time.perf_counter()
        migrations[version](target)
        applied.append(Applied(version + 1, migrations[version], time.perf_counter() - started))
    return applied
