"""scripts/check_other_languages.py on a machine without the generators: a loud skip on a
developer's machine, a failure under CI=true (where .ci/run installs them, so their absence means
the install broke and the README's Go and Java commands went unchecked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_other_languages.py"


def _run_without_tools(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # an empty directory: no protoc, no generators, no javac
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("ci", [None, "false"])
def test_missing_generators_are_a_loud_skip_outside_ci(tmp_path: Path, ci: str | None) -> None:
    result = _run_without_tools(tmp_path, ci)
    assert result.returncode == 0, result.stderr
    assert "!!! SKIPPED **Go**: protoc, protoc-gen-go, protoc-gen-go-grpc not installed" in result.stderr
    assert "!!! SKIPPED **Java**: protoc, grpc_java_plugin, javac" in result.stderr


def test_missing_generators_fail_under_ci(tmp_path: Path) -> None:
    result = _run_without_tools(tmp_path, "true")
    assert result.returncode == 1, result.stderr
    assert "FAILED **Go**: protoc, protoc-gen-go, protoc-gen-go-grpc not installed" in result.stderr
    assert "FAILED **Java**: protoc, grpc_java_plugin, javac" in result.stderr
    assert "SKIPPED" not in result.stderr
