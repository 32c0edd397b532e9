"""Server-configurable limits on what clients may send."""

from __future__ import annotations

from dataclasses import dataclass

from lockservice.model import MAX_LOCK_DELAY_SECONDS, MAX_LOCK_WAIT_SECONDS

__all__ = ["Limits", "message_bytes"]


def message_bytes(max_value_bytes: int) -> int:
    """The largest gRPC message a server with this largest value sends or takes: room for the
    value plus the rest of the largest message around it."""
    return max_value_bytes * 2 + 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_key_bytes: int = 512
    max_value_bytes: int = 1024 * 1024
    max_request_id_chars: int = 128
    max_transaction_items: int = 128
    default_page_size: int = 100
    max_page_size: int = 1000
    # How many versions of each key stay readable (the current one included).
    history_versions: int = 10
    # How long a request_id remembers its first answer.
    request_id_retention_seconds: int = 24 * 3600
    min_lease_ttl_seconds: int = 1
    max_lease_ttl_seconds: int = 24 * 3600
    max_lock_wait_seconds: float = MAX_LOCK_WAIT_SECONDS
    # Lock-delay after a holder's lease expires, when the acquire does not choose one.
    default_lock_delay_seconds: float = 0.0
    max_lock_delay_seconds: float = MAX_LOCK_DELAY_SECONDS
    max_waiters_per_lock: int = 1024
    # Live leases in the whole store (every replica's): a bound on what clients can pin.
    max_leases: int = 1_000_000
    # A watcher further behind than this many pending responses is cut off.
    watch_queue_size: int = 1024
    # Values the server holds for clients (read cache, reply pages, watcher queues), in bytes:
    # see lockservice.core.memory for how it is shared.
    memory_budget_bytes: int = 256 * 1024 * 1024

    @property
    def message_bytes(self) -> int:
        return message_bytes(self.max_value_bytes)
