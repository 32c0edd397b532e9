"""The embedded SQLite store (`SqliteStore`): one file, one writer thread with group commit.

    store.py      the Store: open, close, write, delivery of commits to the event loop
    writer.py     the writer thread: batches, savepoints, one fsync per batch
    txn.py        the WriteTxn a body talks to
    reads.py      reads on their own connection, and the statistics
    pruning.py    expired answers and events past the watch window
    failures.py   what a SQLite error means for an operator
    schema.py     the tables and their migrations

Only the startup module (`lockservice.server`) imports a store; the rest speak `Store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["SqliteStore"]

if TYPE_CHECKING:
    from lockservice.store.sqlite.store import SqliteStore


def __getattr__(name: str) -> object:
    # Lazy, so that importing one module of the package (the schema, for a backup) does not
    # load the store.
    if name == "SqliteStore":
        from lockservice.store.sqlite.store import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
