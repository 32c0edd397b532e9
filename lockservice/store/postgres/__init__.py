"""The PostgreSQL store (`PostgresStore`): any number of lockservice replicas over one database.

    store.py          the Store: the pool, running bodies (and re-running them), availability
    txn.py            the WriteTxn a body talks to (row locks)
    notifications.py  NOTIFY for lock hand-overs, the event pump for Watch
    reads.py          the reads of its own, and the statistics
    pruning.py        expired answers and events past the watch window
    connections.py    reaching the database: targets, causes, the probe
    schema.py         the tables and their migrations

Only the startup module (`lockservice.server`) imports a store; the rest speak `Store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["PostgresStore", "SecondAnswer"]

if TYPE_CHECKING:
    from lockservice.store.postgres.store import PostgresStore, SecondAnswer


def __getattr__(name: str) -> object:
    # Lazy, so that importing one module of the package (the schema, for a backup) does not
    # load the store.
    if name in __all__:
        from lockservice.store.postgres import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
