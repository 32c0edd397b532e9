"""The storage contract. Everything above this module speaks `Store`; only stores know SQL.

An atomic write is a plain function of a transaction, `body(txn)`: it reads, compares, writes,
and raises a `LockserviceError` to abort. The store decides how to run it (SQLite: many bodies
per commit, a savepoint each; PostgreSQL: row locks and re-runs), so a body must be re-runnable
and must do nothing but talk to `txn`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lockservice.model import Resource

__all__ = ["Store", "StoredAnswer", "WriteBody", "WriteTxn"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first successful answer to a request_id, for AIP-155 idempotent retries."""

    fingerprint: str
    answer: str


class WriteTxn(Protocol):
    """What a write body may do. Every change is committed atomically with the body, or not at all."""

    @property
    def now_us(self) -> int:
        """The store's clock for this transaction (microseconds since the epoch)."""
        ...

    def get(self, key: str) -> Resource | None: ...

    def put(self, resource: Resource) -> None:
        """Stores `resource` as the key's current state and as a retained version."""
        ...

    def delete(self, key: str) -> None:
        """Removes the key and its retained versions."""
        ...

    def current_revision(self) -> int:
        """The last committed store revision, or this body's revision once it has one."""
        ...

    def next_revision(self) -> int:
        """The revision of this body's change: allocated on the first call, the same after."""
        ...

    def get_answer(self, request_id: str) -> StoredAnswer | None: ...

    def save_answer(self, request_id: str, fingerprint: str, answer: str) -> None: ...


WriteBody = Callable[[WriteTxn], T]


class Store(Protocol):
    async def write(self, body: Callable[[WriteTxn], T]) -> T:
        """Runs `body` atomically and durably: when this returns, the change survives a crash."""
        ...

    async def get(self, key: str) -> Resource | None: ...

    async def get_version(self, key: str, create_revision: int, version: int) -> Resource | None:
        """A retained version of the key's incarnation created at `create_revision`."""
        ...

    async def list_resources(
        self, prefix: str, start_after: str, limit: int, *, with_values: bool
    ) -> list[Resource]:
        """Up to `limit` resources whose key starts with `prefix` and sorts after `start_after`,
        in key order (byte order of the UTF-8 key)."""
        ...

    async def list_versions(
        self, key: str, create_revision: int, below_version: int, limit: int, *, with_values: bool
    ) -> list[Resource]:
        """Retained versions lower than `below_version`, newest first."""
        ...

    async def current_revision(self) -> int: ...

    def now_us(self) -> int: ...

    async def close(self) -> None:
        """Finishes queued writes, then releases the storage."""
        ...
