"""The README's "Python client" examples run against a live server and print what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerProcess

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()
SECTION = README.split("\n## Python client\n", 1)[1].split("\n## ", 1)[0]


def _run_example(example: str, server: ServerProcess, tmp_path: Path) -> list[str]:
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "LOCKSERVICE_TARGET": server.address}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_section_has_the_sync_async_and_recipes_examples() -> None:
    assert len(re.findall(r"```py\n(.*?)```", SECTION, re.S)) == 3


def test_sync_example(server: ServerProcess, tmp_path: Path) -> None:
    sync_example = re.findall(r"```py\n(.*?)```", SECTION, re.S)[0]
    lines = _run_example(sync_example, server, tmp_path)
    assert lines[:2] == ["visits 3 at version 3", "RESOURCE_EXISTS current version 3"]
    assert re.fullmatch(r"wrote examples/visits-[0-9a-f]{8}/report with token 1", lines[2])
    assert len(lines) == 3


def test_async_example(server: ServerProcess, tmp_path: Path) -> None:
    async_example = re.findall(r"```py\n(.*?)```", SECTION, re.S)[1]
    (line,) = _run_example(async_example, server, tmp_path)
    assert re.fullmatch(r"holding with token [1-9][0-9]* lost: False", line)


def test_recipes_example(server: ServerProcess, tmp_path: Path) -> None:
    recipes_example = re.findall(r"```py\n(.*?)```", SECTION, re.S)[2]
    lines = _run_example(recipes_example, server, tmp_path)
    assert re.fullmatch(r"leader Leader\(value='pod-7', token=1, lease_id='[0-9a-f]{32}'\) token 1", lines[0])
    assert lines[1:] == ["two encoders, tokens 1 1", "two readers at once", "one writer wrote version 1"]


def test_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """The conflict of a reason that guarantees one is typed without Optional, so code written
    as the README shows needs no None checks under `mypy --strict`."""
    examples = re.findall(r"```py\n(.*?)```", SECTION, re.S)
    paths = []
    for number, example in enumerate(examples):
        path = tmp_path / f"example_{number}.py"
        path.write_text(example)
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *paths],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
