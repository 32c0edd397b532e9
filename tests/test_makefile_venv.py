"""`make` repairs a virtual environment made by the wrong Python instead of reusing it for ever.

Each case asks `make -n` (which runs nothing but the Makefile's own state probe) what it would
do for a fake environment directory: no environment is built.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "{}.{}.{}".format(*sys.version_info[:3])


def _fake_venv(path: Path, version: str, interpreter: bool) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {version}\n")
    if interpreter:
        (path / "bin" / "python").symlink_to(sys.executable)
    (path / ".installed").touch()  # newer than both pyproject.toml files
    return path


def _make_plan(venv: Path) -> list[str]:
    """The commands `make` would run to bring `venv` up to date (dry run)."""
    # Run from `make test` too: a parent make's variables would make this one a sub-make.
    env = {
        k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}
    }
    result = subprocess.run(
        ["make", "-n", f"{venv}/.installed", f"VENV={venv}", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


def test_a_venv_of_another_python_version_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path / "venv", "3.9.2", interpreter=True)
    plan = _make_plan(venv)
    assert plan[0] == (
        f'echo "rebuilding {venv}: stale: made by Python 3.9.2, not by {sys.executable} ({VERSION})"'
    )
    assert plan[1] == f"{sys.executable} -m venv --clear {venv}"
    assert plan[-1] == f"touch {venv}/.installed"


def test_a_venv_whose_interpreter_is_gone_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path / "venv", VERSION, interpreter=False)
    plan = _make_plan(venv)
    gone = f'echo "rebuilding {venv}: stale: its interpreter {venv}/bin/python does not run ('
    assert plan[0].startswith(gone)
    assert plan[1] == f"{sys.executable} -m venv --clear {venv}"


def test_a_venv_of_this_python_is_kept(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path / "venv", VERSION, interpreter=True)
    assert _make_plan(venv) == [f"make: '{venv}/.installed' is up to date."]


def test_a_missing_venv_is_built(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    plan = _make_plan(venv)
    assert plan[0] == f"{sys.executable} -m venv {venv}"
    assert plan[-1] == f"touch {venv}/.installed"
