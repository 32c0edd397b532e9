"""Recipes on lockservice's locks and leases, with fencing: leader election (as etcd's
`concurrency.Election`), a counting semaphore and a read-write lock; `Async...` for AsyncClient.

from lockservice_client import Client
from lockservice_client.recipes import Election

with Client() as client:
    with Election(client, "services/billing").campaign("pod-7") as leadership:
        client.put("services/billing/config", b"...", fence=leadership.fence)
"""

from lockservice_client.recipes.aio import AsyncElection, AsyncReadWriteLock, AsyncSemaphore
from lockservice_client.recipes.election import Election, Leader
from lockservice_client.recipes.rwlock import ReadWriteLock
from lockservice_client.recipes.semaphore import Semaphore

__all__ = [
    "AsyncElection",
    "AsyncReadWriteLock",
    "AsyncSemaphore",
    "Election",
    "Leader",
    "ReadWriteLock",
    "Semaphore",
]
