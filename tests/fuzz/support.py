"""The fuzz suite's budget and hypothesis settings.

CI runs a bounded, derandomized budget (the same examples every run, so a failure reproduces).
`LOCKSERVICE_FUZZ_EXAMPLES=5000` runs that many examples per generator instead, seeded at random
(a failure prints the blob that reproduces it).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["LONG_RUN", "examples", "fuzz_settings"]

LONG_RUN = "LOCKSERVICE_FUZZ_EXAMPLES" in os.environ


def examples(ci_budget: int) -> int:
    """`ci_budget` examples, or LOCKSERVICE_FUZZ_EXAMPLES on demand."""
    return int(os.environ.get("LOCKSERVICE_FUZZ_EXAMPLES", ci_budget))


def fuzz_settings(ci_budget: int) -> settings:
    """Hypothesis settings: `examples(ci_budget)`, no deadline (a loaded machine), no database,
    derandomized in CI."""
    return settings(
        max_examples=examples(ci_budget),
        deadline=None,
        database=None,
        derandomize=not LONG_RUN,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
