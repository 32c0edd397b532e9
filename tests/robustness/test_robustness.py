"""Short robustness runs on each backend: concurrent clients under kills and pauses, the history
checked for linearizability, durability, increasing tokens, single holders and fencing.

The seed comes from LOCKSERVICE_ROBUSTNESS_SEED, or is picked and printed; a failure prints it with
the command that replays the same schedule (`python -m tests.robustness ...`, docs/robustness.md).
LOCKSERVICE_ROBUSTNESS_SECONDS sets the length of each run (default 5; the retry scenario's:
LOCKSERVICE_ROBUSTNESS_RETRY_SECONDS, default 4); a run lasts until each kind of fault has
happened in any case, which on a loaded machine is most of its length, and its clients go on
until the history holds `ENOUGH`.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory
from tests.robustness.checker import check, forget_newest_write
from tests.robustness.clients import Workload
from tests.robustness.runner import FINAL, RunConfig, RunResult, run

SECONDS = float(os.environ.get("LOCKSERVICE_ROBUSTNESS_SECONDS", "5"))
RETRY_SECONDS = float(os.environ.get("LOCKSERVICE_ROBUSTNESS_RETRY_SECONDS", "4"))


def _seed() -> int:
    chosen = int(os.environ.get("LOCKSERVICE_ROBUSTNESS_SEED", "0"))
    return chosen or random.SystemRandom().randrange(1, 1_000_000)


# What a run must have done to prove something (a seed whose faults leave little calm time gets
# these after its faults): locks handed over, fenced writes landed, plain writes acknowledged.
ENOUGH = ((("acquire ok",), 5), (("fenced_update ok",), 5), (("update ok", "cas ok"), 3))


def _run(
    backend: str, server_factory: ServerFactory, workload: Workload, seconds: float = SECONDS
) -> RunResult:
    config = RunConfig(backend=backend, seed=_seed(), duration=seconds, workload=workload, at_least=ENOUGH)

    def make_server(store_url: str) -> ServerProcess:
        return server_factory(name="robust", store_url=store_url)

    result = run(config, make_server)
    print(result.explain())
    return result


@pytest.mark.timeout(240)
def test_histories_under_kills_and_pauses_are_linearizable(
    backend: str, server_factory: ServerFactory
) -> None:
    result = _run(backend, server_factory, Workload())
    assert result.ok, result.explain()
    # The run did what it claims: faults of each kind, locks handed over, fenced writes landed.
    kinds = {fault.kind for fault in result.faults}
    assert {"kill", "pause"} <= kinds, result.explain()
    counts = result.counts()
    for names, least in ENOUGH:
        assert sum(counts[name] for name in names) >= least, result.explain()
    # The checker rejects this very history once a final read forgets an acknowledged write.
    lost = check(forget_newest_write(result.history, FINAL), final_process=FINAL)
    assert {v.check for v in lost.violations} == {"durability", "linearizability"}, lost.explain()


@pytest.mark.timeout(240)
def test_writes_retried_with_their_request_id_under_kills_are_linearizable(
    backend: str, server_factory: ServerFactory
) -> None:
    """Every unanswered write is retried with the same request_id until answered: the history
    holds each retry loop as one op, which the server's deduplication must make atomic."""
    result = _run(backend, server_factory, Workload(retry=True), seconds=RETRY_SECONDS)
    assert result.ok, result.explain()
    assert "kill" in {fault.kind for fault in result.faults}, result.explain()
