"""Whether a virtual environment was made by the Python running this script, for `make`.

Prints one line: `ok` (made by this interpreter's version, and its own interpreter runs),
`missing` (no `pyvenv.cfg`), or `stale: WHY` (made by another Python version, or its interpreter
is gone or broken). The Makefile rebuilds the environment unless it reads `ok`: a `.venv` left by
another Python would otherwise be reused for ever, its packages built for the wrong interpreter.
Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _configured_version(config: Path) -> str:
    """The `version` (or, newer, `version_info`) that `python -m venv` wrote to pyvenv.cfg."""
    values: dict[str, str] = {}
    for line in config.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values.get("version_info") or values.get("version", "")


def state(venv: Path) -> str:
    config = venv / "pyvenv.cfg"
    if not config.is_file():
        return "missing"
    wanted = "{}.{}.{}".format(*sys.version_info[:3])
    made_by = _configured_version(config)
    # version_info may carry a release level ("3.13.0.final.0"): compare its first three parts.
    if ".".join(made_by.split(".")[:3]) != wanted:
        return f"stale: made by Python {made_by or '(unknown)'}, not by {sys.executable} ({wanted})"
    python = venv / "bin" / "python"
    try:
        ran = subprocess.run(
            [str(python), "-c", "import sys; print('{}.{}.{}'.format(*sys.version_info[:3]))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"stale: its interpreter {python} does not run ({error})"
    if ran.returncode != 0 or ran.stdout.strip() != wanted:
        return f"stale: its interpreter {python} does not run as Python {wanted}"
    return "ok"


if __name__ == "__main__":
    print(state(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv")))
