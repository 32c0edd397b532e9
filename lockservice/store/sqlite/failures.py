"""What a failed SQLite call means for an operator, and whether the storage itself failed."""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["cause", "error_name", "storage_failed"]

# What an operator should read for SQLite's result codes (extended codes share the prefix).
_SQLITE_CAUSES = {
    "SQLITE_NOTADB": "the file is not a SQLite database (garbage, or another kind of file)",
    "SQLITE_CORRUPT": "the database file is corrupt (damaged or truncated); restore it from a backup",
    "SQLITE_READONLY": "the file or its directory is read-only",
    "SQLITE_CANTOPEN": "the file cannot be opened or created (check the directory and its permissions)",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "an I/O error (a failing or vanished disk?)",
    "SQLITE_PERM": "permission denied",
}
_STORAGE_FAILURES = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_NOMEM",
)
_OS_CAUSES = {
    errno.EROFS: "the file or its directory is read-only (a read-only file system)",
    errno.EACCES: "permission denied: the file or its directory is read-only to this user",
    errno.EPERM: "permission denied: the file or its directory is read-only to this user",
    errno.ENOSPC: "the disk is full",
}


def error_name(error: sqlite3.Error) -> str:
    return getattr(error, "sqlite_errorname", "") or error.__class__.__name__


def storage_failed(error: sqlite3.Error, conn: sqlite3.Connection) -> bool:
    """The disk or the file failed, not a statement (or SQLite ended the transaction): nothing
    in this transaction can commit."""
    return error_name(error).startswith(_STORAGE_FAILURES) or not conn.in_transaction


def cause(error: sqlite3.Error | OSError) -> str:
    """One line an operator can act on, with SQLite's code name for searching."""
    if isinstance(error, OSError):
        return _OS_CAUSES.get(error.errno or 0, error.strerror or str(error))
    name = error_name(error)
    for prefix, text in _SQLITE_CAUSES.items():
        if name.startswith(prefix):
            return f"{text} ({name})"
    return f"{error} ({name})"
