"""Per-client stream quotas."""

from __future__ import annotations

import pytest

from lockservice.core.quotas import StreamQuota
from lockservice.errors import LimitExceeded


def test_streams_and_watchers_are_counted_per_client() -> None:
    quota = StreamQuota(max_streams=3, max_watchers=2)
    quota.open("a", watch=True)
    quota.open("a", watch=True)
    with pytest.raises(LimitExceeded) as caught:
        quota.open("a", watch=True)
    assert caught.value.metadata == {"limit": "2", "quota": "watchers-per-client"}
    quota.open("a", watch=False)
    with pytest.raises(LimitExceeded) as caught:
        quota.open("a", watch=False)
    assert caught.value.metadata == {"limit": "3", "quota": "streams-per-client"}
    quota.open("b", watch=True)  # another client has its own quota
    assert quota.open_streams("a") == 3


def test_closing_gives_the_place_back_and_forgets_idle_clients() -> None:
    quota = StreamQuota(max_streams=1, max_watchers=1)
    quota.open("a", watch=True)
    quota.close("a", watch=True)
    assert quota.open_streams("a") == 0
    quota.open("a", watch=True)
    assert quota.open_streams("a") == 1
