"""Runs the image's install steps from deploy/Dockerfile in clean virtual environments, then
starts the installed server with the image's LOCKSERVICE_* variables (its ports moved to free
loopback ones) and runs the image's HEALTHCHECK against it: the Dockerfile tested without a
Docker engine.

    python deploy/check_image.py            (CI runs it; needs the package index for the wheels)

The steps are read from the Dockerfile itself, so the check cannot drift from it: every RUN
line that uses pip, with the build context copied as the Dockerfile copies it, `python` the
stage's clean venv and /wheels a temporary directory. System steps (useradd, mkdir, chown)
need root in an image and are not run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def pip_steps(text: str) -> list[list[str]]:
    """The pip commands of each stage: one list per FROM."""
    stages: list[list[str]] = []
    for word, rest in instructions(text):
        if word == "FROM":
            stages.append([])
        elif word == "RUN":
            stages[-1] += [part.strip() for part in rest.split("&&") if " pip " in f" {part} "]
    return stages


def healthcheck(text: str) -> list[str]:
    (rest,) = [rest for word, rest in instructions(text) if word == "HEALTHCHECK"]
    exec_form = rest.split("CMD", 1)[1].strip()
    command: list[str] = json.loads(exec_form)
    return command


def image_env(text: str) -> dict[str, str]:
    """The LOCKSERVICE_* variables the final stage's ENV lines set."""
    stages: list[list[tuple[str, str]]] = [[]]
    for word, rest in instructions(text):
        if word == "FROM":
            stages.append([])
        stages[-1].append((word, rest))
    env: dict[str, str] = {}
    for word, rest in stages[-1]:
        if word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                if name.startswith("LOCKSERVICE_"):
                    env[name] = value
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(command: str, cwd: Path, python: Path, wheels: Path) -> None:
    line = command.replace("/wheels", str(wheels))
    argv = shlex.split(line)
    if argv[0] == "python":
        argv[0] = str(python)
    print("+", shlex.join(argv), flush=True)
    subprocess.run(argv, cwd=cwd, check=True)


def main() -> int:
    text = DOCKERFILE.read_text()
    build_steps, image_steps = pip_steps(text)
    with tempfile.TemporaryDirectory(prefix="lockservice-image-") as tmp:
        work = Path(tmp)
        source, wheels = work / "src", work / "wheels"
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        for tree in ("lockservice", "clients/python"):
            shutil.copytree(
                ROOT / tree,
                source / tree,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache"),
            )
        for stage, steps in (("build", build_steps), ("image", image_steps)):
            venv.create(work / stage, with_pip=True)
            for step in steps:
                run(step, source if stage == "build" else work, work / stage / "bin" / "python", wheels)
        binary = work / "image" / "bin" / "lockservice"
        # The image's own variables, with free loopback ports in place of its ports.
        ports = {"50051": free_port(), "50052": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
        env |= image_env(text)
        for name in ("LOCKSERVICE_LISTEN", "LOCKSERVICE_HEALTH_LISTEN"):
            env[name] = f"127.0.0.1:{ports[env[name].rsplit(':', 1)[1]]}"
        env["LOCKSERVICE_DB"] = str(work / "lockservice.db")
        server = subprocess.Popen([str(binary), "serve"], env=env)
        try:
            probe = healthcheck(text)
            if probe[0] == "python":
                probe[0] = str(work / "image" / "bin" / "python")
            for image_port, port in ports.items():
                probe = [arg.replace(f"127.0.0.1:{image_port}", f"127.0.0.1:{port}") for arg in probe]
            for _ in range(100):
                if subprocess.run(probe, check=False, capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                print("the image's HEALTHCHECK never passed", file=sys.stderr)
                return 1
            print("+", shlex.join(probe), "-> 0", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
        if code != 0:
            print(f"the server exited with {code} on SIGTERM", file=sys.stderr)
            return 1
    print("deploy/Dockerfile: install steps and HEALTHCHECK pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
