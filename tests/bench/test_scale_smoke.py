"""`python -m bench --scale` (issue 15) fills the store and reports both sizes side by side, at
tiny sizes. A file of its own, so that it runs beside tests/test_bench_smoke.py. No timing
assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.support import TINY, run_bench

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_scale_reports_both_sizes_side_by_side(tmp_path: Path) -> None:
    output, records = run_bench(tmp_path, *TINY, "--scale", "20,50:30", "--workloads", "get,lease-grant")
    runs = {(r["workload"], r["scale"]): r for r in records if r["run"] == 1}
    assert sorted(runs) == sorted((w, n) for w in ("echo", "get", "lease-grant") for n in ("20", "50:30"))
    for size, keys, leases in (("20", 20, 20), ("50:30", 50, 30)):
        for name in ("get", "lease-grant"):
            record = runs[(name, size)]
            assert (record["stored_keys"], record["stored_leases"]) == (keys, leases), record
            assert record["ops"] > 0 and record["errors"] == 0, record
            assert record["ratio_to_echo"] > 0 and record["server_cpu_to_echo"] > 0, record
            assert record["rss_filled_mb"] > 0 and record["server_rss_mb"] > 0, record
    assert "| get | 20 + 20 |" in output and "| get | 50 + 30 |" in output, output[-3000:]
    assert "| lease-grant | 50 + 30 |" in output, output[-3000:]
