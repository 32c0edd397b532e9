"""Storage backends behind one `Store` protocol."""

from lockservice.store.base import Store, StoredAnswer, WriteBody, WriteTxn

__all__ = ["Store", "StoredAnswer", "WriteBody", "WriteTxn"]
