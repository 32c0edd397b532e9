"""Frozen dataclasses that the core and the stores speak. No gRPC, no protobuf, no SQL.

Times are integers: microseconds since the Unix epoch (UTC), named `*_us`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "Compare",
    "ConflictState",
    "DeleteOperation",
    "DeleteResult",
    "ExpectAbsent",
    "ExpectEtag",
    "ExpectPresent",
    "ExpectValue",
    "ExpectVersion",
    "Expectation",
    "Fence",
    "Operation",
    "OperationResult",
    "Page",
    "PutOperation",
    "Resource",
    "TransactResult",
    "etag_for",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def etag_for(create_revision: int, version: int) -> str:
    """A strong HTTP entity tag, unique per incarnation and version of a key.

    Clients treat it as opaque; it is derived, never stored, so it cannot drift.
    """
    return f'"{create_revision}.{version}"'


@dataclass(frozen=True, slots=True)
class Resource:
    key: str
    value: bytes
    content_type: str
    version: int
    create_revision: int
    mod_revision: int
    create_time_us: int
    update_time_us: int
    lease_id: str = ""

    @property
    def etag(self) -> str:
        return etag_for(self.create_revision, self.version)


@dataclass(frozen=True, slots=True)
class Fence:
    lock_name: str
    token: int


@dataclass(frozen=True, slots=True)
class ExpectVersion:
    version: int

    def describe(self) -> str:
        return f"version {self.version}"


@dataclass(frozen=True, slots=True)
class ExpectEtag:
    etag: str

    def describe(self) -> str:
        return f"etag {self.etag}"


@dataclass(frozen=True, slots=True)
class ExpectValue:
    value: bytes

    def describe(self) -> str:
        return f"value of {len(self.value)} bytes"


@dataclass(frozen=True, slots=True)
class ExpectAbsent:
    def describe(self) -> str:
        return "absent"


@dataclass(frozen=True, slots=True)
class ExpectPresent:
    def describe(self) -> str:
        return "present"


Expectation = ExpectVersion | ExpectEtag | ExpectValue | ExpectAbsent | ExpectPresent


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    expectation: Expectation


@dataclass(frozen=True, slots=True)
class PutOperation:
    key: str
    value: bytes
    content_type: str = ""
    lease_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteOperation:
    key: str


Operation = PutOperation | DeleteOperation


@dataclass(frozen=True, slots=True)
class OperationResult:
    """For a put, the new state; for a delete, the last state before it."""

    resource: Resource
    deleted: bool


@dataclass(frozen=True, slots=True)
class TransactResult:
    revision: int
    results: tuple[OperationResult, ...]


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """`resource` is the last state before the delete, or None when nothing was deleted."""

    resource: Resource | None
    revision: int


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Resource, ...]
    next_page_token: str
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ConflictState:
    """What a conflicting request ran into: enough for the client to re-fetch, merge, retry."""

    key: str
    current: Resource | None
    expected: str = ""
    compare_index: int | None = None
    revision: int = 0
    holder: str = ""
    token: int = 0
    expire_time_us: int = 0
    lease_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
