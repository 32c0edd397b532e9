"""The benchmark harness keeps working: `python -m bench --smoke` against SQLite runs every
workload of issue 7 for a second or two and each produces a sound result. No timing assertions:
figures on a shared CI machine mean nothing; that the harness runs, counts and checks does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workloads import ISSUE_WORKLOADS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_smoke_runs_every_workload_without_errors(tmp_path: Path) -> None:
    lines = tmp_path / "bench.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--backends", "sqlite", "--json", str(lines)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    runs = {record["workload"]: record for record in records if record["run"] == 1}
    assert sorted(runs) == sorted(["echo", *ISSUE_WORKLOADS])
    for record in runs.values():
        assert record["ops"] > 0, record
        assert record["errors"] == 0, record
        assert record["ratio_to_echo"] > 0, record
    for name in ("cas-hot", "cas-spread", "watch-fanout"):
        assert runs[name]["check"] == "ok", runs[name]
