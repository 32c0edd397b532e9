"""take(): the next fencing token is above the lock's last one and above the store's floor."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, cast

from lockservice.core.handoff import new_lock_state, take
from lockservice.model import Lease, LockState
from lockservice.store.base import WriteTxn


@dataclass
class _Txn:
    """The part of a WriteTxn that take() uses."""

    token_floor: int
    now_us: int = 1_000
    locks: dict[str, LockState] = field(default_factory=dict)

    def put_lock(self, state: LockState) -> None:
        self.locks[state.name] = state


LEASE = Lease(lease_id="l", holder="h", ttl_seconds=10, grant_time_us=0, expire_time_us=10_000_000)


def _token(floor: int, last: int) -> int:
    txn = _Txn(token_floor=floor)
    state = replace(new_lock_state("n"), token=last)
    held = take(cast(WriteTxn, cast(Any, txn)), state, LEASE, "h", 0, "g")
    assert txn.locks["n"] == held
    return held.token


def test_the_next_token_is_above_the_last_and_above_the_floor() -> None:
    assert _token(floor=0, last=0) == 1
    assert _token(floor=0, last=41) == 42
    assert _token(floor=1_000_000, last=0) == 1_000_001  # a name the restored backup never saw
    assert _token(floor=1_000_000, last=3) == 1_000_001  # a name it did see
    assert _token(floor=1_000_000, last=1_000_005) == 1_000_006  # tokens issued since the restore
