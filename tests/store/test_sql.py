"""The SQL both stores share, where it is arithmetic rather than a query: the prune margin."""

from __future__ import annotations

import pytest

from lockservice.store.sql import events_overrun


@pytest.mark.parametrize(
    "revision,compacted,window,due",
    [
        (10_000 + 1_000, 0, 10_000, False),  # a tenth of the window past it: not yet
        (10_000 + 1_001, 0, 10_000, True),
        (100 + 16, 0, 100, False),  # a small window still waits 16 revisions
        (100 + 17, 0, 100, True),
        (5_000 + 10_000 + 1_001, 5_000, 10_000, True),  # counted from the compacted revision
    ],
)
def test_events_are_pruned_once_the_window_is_overrun_by_its_margin(
    revision: int, compacted: int, window: int, due: bool
) -> None:
    assert events_overrun(revision, compacted, window) is due
