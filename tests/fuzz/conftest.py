"""An on-demand long run (LOCKSERVICE_FUZZ_EXAMPLES) is not cut by the per-test timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.support import LONG_RUN

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if LONG_RUN:
        for item in items:
            if _HERE in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.timeout(0))
