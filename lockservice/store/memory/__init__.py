"""An in-memory `Store` with an injectable clock, for tests of the core without a database.

It keeps the whole `lockservice.store.base` contract (rollback of a failing body, gap-free
revisions, events, version retention, lease and lock rows, notices) and is checked against the
same contract suite as SQLite and PostgreSQL (`tests/store/contract/`).
"""

from lockservice.store.memory.clock import Clock, ManualClock, SystemClock
from lockservice.store.memory.store import MemoryStore
from lockservice.store.memory.txn import SecondAnswer

__all__ = ["Clock", "ManualClock", "MemoryStore", "SecondAnswer", "SystemClock"]
