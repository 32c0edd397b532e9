"""Every shell block (```sh, ```bash, ```console) of the README and of the docs/ pages runs as
written, or is named here with the reason it cannot run on a test machine.

Blocks run section by section (the `# ` and `## ` headings of each page), in order, in a scratch
directory of the section's own, with bash `-e -o pipefail`, so a walkthrough's later blocks see
the files its earlier ones made. The only rewriting is of loopback ports: each port a block
names is mapped to a free one (port 50051, where a section starts no server of its own, to the
test's live server, which the client verbs also reach through `LOCKSERVICE_TARGET`). A command
whose comment documents a failure (`# exit 3: ...`) must exit with exactly that status; in the
quick start, each client line prints what its comment says. A block that is one foreground
server (`lockservice serve ...`, `python -m lockservice.http ...`) is started in the background,
waited for until all its ports accept connections, and stopped when its section ends. The quick
start runs without `.venv/bin` on `PATH`: it must put `lockservice` there itself.

A new block runs by default; `SKIPPED` names each one that does not by its first line.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.ports import free_port
from tests.conftest import ServerProcess
from tests.docs import PAGES, parts

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
BLOCK_TIMEOUT = 60.0

# Blocks that are not run, by marker (the first line, less a trailing comment or backslash), and why.
SKIPPED = {
    "make serve": (
        "builds .venv in the checkout and serves on the fixed port 50051 until stopped; make test "
        "is this very suite (CI runs `make test`: tests/test_readme.py)"
    ),
    "pip install lockservice": (
        "installs from a package index; tests/test_install.py builds both wheels and installs "
        "them in fresh environments"
    ),
    "pip install lockservice-client": (
        "installs from a package index; tests/test_install.py covers the client wheel"
    ),
    "grpcurl -plaintext 127.0.0.1:50051 list": "grpcurl is not installed on the test machines",
    "cd clients/node": "npm ci downloads from the npm registry; clients/node runs its own tests",
    "mkdir -p gen/go": (
        "needs protoc and the Go generators from Debian, which .ci/run installs after `make test`; "
        "scripts/check_other_languages.py, which .ci/run runs then, runs it as written"
    ),
    "mkdir -p gen/java gen/classes": (
        "needs protoc, the gRPC Java plugin and Debian's jars; scripts/check_other_languages.py "
        "runs it as written, after .ci/run installs them"
    ),
    "cd clients/node && npm ci && npx buf lint ../..": "npm ci downloads from the npm registry",
    "lockservice serve --tls-cert server.crt --tls-key server.key": (
        "a synopsis of alternative servers, each in the foreground; the sidecar walkthrough in "
        "deploy/ runs the same flags with certificates it makes"
    ),
    "lockservice serve --tls-cert server.crt --tls-key server.key --tls-client-ca ca.crt": (
        "a foreground server followed by its client in one block; tests/e2e/test_http_tls.py "
        "runs HTTPS with client certificates"
    ),
    "python -m lockservice.http --listen 0.0.0.0:8443 --tls-cert gw.crt --tls-key gw.key": (
        "a synopsis: names a remote `lockservice:50051` and certificates it does not make; "
        "tests/e2e/test_http_tls.py runs the gateway over TLS"
    ),
    "# While the server runs and writes (SQLite's backup API: one consistent point in time):": (
        "writes to /backups and /var/lib/lockservice; tests/test_cli_backup.py and "
        "tests/e2e/test_backup_restore.py run backup and restore"
    ),
    "pg_dump --format=custom --file=lockservice.dump postgresql://postgres@127.0.0.1:5432/lockservice": (
        "needs a database named `lockservice` on a PostgreSQL shared by other runs; "
        "tests/e2e/test_backup_restore.py runs the same cycle on a database of its own"
    ),
    "createdb -h 127.0.0.1 -U postgres lockservice": (
        "creates the fixed database `lockservice` and runs two foreground servers; "
        "tests/e2e/test_replicas.py runs replicas over PostgreSQL"
    ),
    "for i in 1 2 3 4; do": (
        "four servers on the fixed database `lockservice` until stopped; "
        "tests/e2e/test_reuse_port.py runs them"
    ),
    ".venv/bin/python -m bench --issue-table": (
        "benchmarks run for minutes; tests/test_bench_smoke.py and tests/bench run the harness briefly"
    ),
}

SHELL_BLOCK = re.compile(r"^```(?:sh|bash|console)\n(.*?)^```", re.S | re.M)
PORT = re.compile(r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0):(\d{4,5})\b")
LISTEN = re.compile(
    r"--(?:listen|metrics-listen|health-listen|http-listen)[ =](?:127\.0\.0\.1|localhost|0\.0\.0\.0):(\d+)"
)
SERVER_COMMAND = re.compile(r"^(lockservice serve|python -m lockservice\.http)\b")
DOCUMENTED_EXIT = re.compile(r"^(?P<command>[^#\n]*?[^\s\\])\s+# exit (?P<status>\d+)\b(?P<rest>.*)$")


# Sections whose `lockservice VERB ...  # OUTPUT` lines must print exactly OUTPUT (the Command
# line section's are checked with their exit statuses and messages by tests/test_cli_client.py).
OUTPUTS_CHECKED = frozenset({"Quick start"})
CLIENT_LINE = re.compile(r"^lockservice (?!serve\b)[^#\n]*?\s+# (?P<output>.+)$")


@dataclass(frozen=True)
class Block:
    section: str
    marker: str  # its first line, less a trailing `# comment` or `\\` (a comment line stays whole)
    text: str

    def commands(self) -> list[str]:
        """Its commands: continuation lines joined, comments and blank lines left out."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return [line for line in (raw.split(" #")[0].strip() for raw in joined.splitlines()) if line]

    @property
    def is_server(self) -> bool:
        commands = self.commands()
        return len(commands) == 1 and SERVER_COMMAND.match(commands[0]) is not None


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        for title, part in parts(page.read_text(), deepest=2):
            for match in SHELL_BLOCK.finditer(part):
                text = match.group(1)
                first = text.split("\n", 1)[0]
                marker = first if first.startswith("#") else re.sub(r"\s+(#.*|\\)$", "", first)
                found.append(Block(title, marker, text))
    return found


BLOCKS = _blocks()
SECTIONS = sorted(
    {block.section for block in BLOCKS if block.marker not in SKIPPED},
    key=[block.section for block in BLOCKS].index,
)


def test_every_skipped_block_exists_and_markers_are_unique() -> None:
    markers = [block.marker for block in BLOCKS]
    assert len(markers) == len(set(markers)), "two shell blocks start alike: the skip list is ambiguous"
    assert sorted(set(SKIPPED) - set(markers)) == []


def _documented_outputs(block: Block) -> list[str]:
    """What the block's client lines say they print, in order."""
    return [match["output"] for line in block.text.splitlines() if (match := CLIENT_LINE.match(line))]


def _with_documented_exits(text: str) -> str:
    """`CMD  # exit N: ...` becomes a check that CMD exits with N exactly (under `set -e`)."""
    lines = []
    for line in text.splitlines():
        match = DOCUMENTED_EXIT.match(line)
        checked = (
            f"if {match['command']}; then false; else test $? -eq {match['status']}; fi" if match else line
        )
        lines.append(checked)
    return "\n".join(lines) + "\n"


def _wait_for_ports(process: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + 30.0
    waiting = list(ports)
    while waiting and time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server block exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", waiting[0]), timeout=1.0):
                waiting.pop(0)
        except OSError:
            time.sleep(0.1)
    assert not waiting, f"ports {waiting} never opened:\n{log.read_text()}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server the quick start's `make serve` would be: SQLite, plaintext."""
    server = ServerProcess(tmp_path_factory.mktemp("readme-server"), "sqlite").start()
    yield server
    server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("section", SECTIONS)
def test_the_sections_shell_blocks_run_as_written(
    section: str, live_server: ServerProcess, tmp_path: Path
) -> None:
    blocks = [block for block in BLOCKS if block.section == section and block.marker not in SKIPPED]
    own_ports = {port for block in blocks if block.is_server for port in LISTEN.findall(block.text)}
    ports: dict[str, int] = {} if "50051" in own_ports else {"50051": live_server.port}
    # The scratch directory looks like a checkout where blocks need one: .venv and protos/.
    (tmp_path / ".venv").symlink_to(VENV)
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    base_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_") and k != "VIRTUAL_ENV"}
    env["PATH"] = base_path if section == "Quick start" else f"{VENV / 'bin'}{os.pathsep}{base_path}"
    env["LOCKSERVICE_TARGET"] = live_server.address

    def mapped(text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            port = ports.setdefault(match[2], free_port())
            return f"{match[1]}:{port}"

        return PORT.sub(replace, text)

    with ExitStack() as servers:
        for index, block in enumerate(blocks):
            script = tmp_path / f"block-{index}.sh"
            script.write_text("set -e -o pipefail\n" + _with_documented_exits(mapped(block.text)))
            if block.is_server:
                log = tmp_path / f"block-{index}.log"
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        ["bash", str(script)],
                        cwd=tmp_path,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                servers.callback(_stop, process)
                _wait_for_ports(process, [int(port) for port in LISTEN.findall(mapped(block.text))], log)
                continue
            result = subprocess.run(
                ["bash", str(script)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
            assert result.returncode == 0, (
                f"block {block.marker!r} ({section}) exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
            if section in OUTPUTS_CHECKED:
                # Compared without line ends: `get` prints a value as stored, with no newline added.
                printed = result.stdout.replace("\n", "")
                assert printed == "".join(_documented_outputs(block)), result.stdout + result.stderr
