"""The README's promises: its Python example runs against a real server, and CI runs the
README's test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_python_example_runs_against_a_live_server(server: ServerProcess, tmp_path: Path) -> None:
    (example,) = _python_blocks()
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "LOCKSERVICE_TARGET": server.address}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "version 2"
    assert re.fullmatch(r"ALREADY_EXISTS examples/counter-[0-9a-f]{8} already exists at version 2", lines[1])


def test_quick_start_has_exactly_the_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quick_start, re.M)
    assert commands == ["make serve", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.M)
