"""Storage backends behind one `Store` protocol (`base`).

    base.py        the contract every store keeps, and the capabilities a store may declare
    sql.py         the SQL both database backends share (pages, version retention, pruning margin)
    rows.py        column lists and row <-> model mapping of the SQL backends
    sqlite/        the embedded SQLite store;  postgres/  the PostgreSQL store (replicas)
    backup.py      backup, restore and token-floor bumps of either (`lockservice backup` ...)
    outage.py, read_cache.py   what both use: outage logging, the SQLite read cache

Importing this package loads only the contract; a backend is imported by the server's startup.
"""

from lockservice.store.base import Capabilities, Store, StoredAnswer, WriteBody, WriteTxn

__all__ = ["Capabilities", "Store", "StoredAnswer", "WriteBody", "WriteTxn"]
