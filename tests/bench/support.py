"""Running `python -m bench` from a test, at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent

TINY = ("--workers", "1", "--concurrency", "2", "--duration", "0.15")  # one worker, 0.15 s a run


def run_bench(tmp_path: Path, *args: str, timeout: float = 100) -> tuple[str, list[dict[str, Any]]]:
    """Runs `python -m bench ARGS`; returns its output and its JSON records."""
    lines = tmp_path / "bench.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(lines)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout, [json.loads(line) for line in lines.read_text().splitlines()]
