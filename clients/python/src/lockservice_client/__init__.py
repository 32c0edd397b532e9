"""lockservice_client: the Python client of lockservice (sync `Client`, asyncio `AsyncClient`).

from lockservice_client import Client, VersionConflict

with Client("127.0.0.1:50051") as client:
    client.update("counters/visits", lambda value: str(int(value or b"0") + 1).encode())
    with client.lock("jobs/nightly", ttl_seconds=10) as held:
        client.put("jobs/nightly/state", b"running", fence=held.fence)
"""

from lockservice_client.aio import AsyncClient
from lockservice_client.backoff import Backoff
from lockservice_client.channels import DEFAULT_TARGET, Tls, connect, connect_async, default_target
from lockservice_client.client import Client
from lockservice_client.errors import (
    AlreadyExists,
    Conflict,
    ConflictError,
    DeadlineExceeded,
    FeatureNotImplemented,
    InternalError,
    InvalidArgument,
    InvalidKey,
    InvalidPageToken,
    InvalidRequestId,
    InvalidTtl,
    LeaseNotFound,
    LimitExceeded,
    LockHeld,
    LockLost,
    LockNotFound,
    LockNotHeld,
    LockserviceError,
    NotFound,
    PermissionDenied,
    RequestIdReused,
    ResourceNotFound,
    RevisionCompacted,
    ShuttingDown,
    StaleFence,
    StatedConflict,
    StoreUnavailable,
    TransactionConflict,
    Unauthenticated,
    Unavailable,
    ValueConflict,
    ValueTooLarge,
    VersionConflict,
    VersionNotFound,
)
from lockservice_client.held_lock import AsyncHeldLock, HeldLock
from lockservice_client.listing import AsyncResourceListing, ResourceListing
from lockservice_client.watching import AsyncWatch, Watch

__all__ = [
    "DEFAULT_TARGET",
    "AlreadyExists",
    "AsyncClient",
    "AsyncHeldLock",
    "AsyncResourceListing",
    "AsyncWatch",
    "Backoff",
    "Client",
    "Conflict",
    "ConflictError",
    "DeadlineExceeded",
    "FeatureNotImplemented",
    "HeldLock",
    "InternalError",
    "InvalidArgument",
    "InvalidKey",
    "InvalidPageToken",
    "InvalidRequestId",
    "InvalidTtl",
    "LeaseNotFound",
    "LimitExceeded",
    "LockHeld",
    "LockLost",
    "LockNotFound",
    "LockNotHeld",
    "LockserviceError",
    "NotFound",
    "PermissionDenied",
    "RequestIdReused",
    "ResourceListing",
    "ResourceNotFound",
    "RevisionCompacted",
    "ShuttingDown",
    "StaleFence",
    "StatedConflict",
    "StoreUnavailable",
    "Tls",
    "TransactionConflict",
    "Unauthenticated",
    "Unavailable",
    "ValueConflict",
    "ValueTooLarge",
    "VersionConflict",
    "VersionNotFound",
    "Watch",
    "__version__",
    "connect",
    "connect_async",
    "default_target",
]

__version__ = "0.1.0"
