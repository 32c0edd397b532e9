"""`lockservice serve --http-listen` under a read-only root file system, as the Kubernetes
manifests run it (`readOnlyRootFilesystem: true`): the HTTP adapter's private socket needs a
temporary directory. Without a writable one it exits 1 naming the HTTP address and TMPDIR; with
TMPDIR on a writable volume (the manifests' emptyDir) it serves.

The root is made read-only in a mount namespace of the server's own (`unshare`), so the machine
is untouched: needs root or unprivileged user namespaces, else the tests are skipped.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from bench.ports import free_port
from tests.conftest import LOCKSERVICE, wait_until_serving


def read_only_root(
    writable: Path, command: list[str], env: dict[str, str], *more: Path
) -> subprocess.Popen[bytes]:
    """Runs `command` from `/` with every file system read-only but `writable` and `more` (and
    /dev, /proc)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    namespaces = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    probe = subprocess.run([*namespaces, "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    binds = "".join(
        f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(path))} && " for path in (writable, *more)
    )
    script = binds + "mount -o remount,bind,ro / && exec " + shlex.join(command)
    return subprocess.Popen(
        [*namespaces, "sh", "-c", script],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def serve_command(writable: Path, grpc_address: str, http_address: str) -> list[str]:
    return [
        LOCKSERVICE,
        "serve",
        *("--listen", grpc_address, "--db", str(writable / "lockservice.db")),
        *("--http-listen", http_address, "--log-format", "json"),
    ]


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_") and k != "TMPDIR"}


def test_without_a_writable_temporary_directory_it_exits_1_naming_the_http_address(tmp_path: Path) -> None:
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    server = read_only_root(tmp_path, serve_command(tmp_path, grpc_address, http_address), base_env())
    output, _ = server.communicate(timeout=60)
    assert server.returncode == 1, output
    (record,) = [json.loads(line) for line in output.decode().splitlines() if '"cannot listen"' in line]
    assert record["http_listen"] == http_address
    assert "listen" not in record
    assert record["error"].startswith(
        "no writable temporary directory for the HTTP adapter's private socket: "
        "set TMPDIR to a writable directory (an emptyDir under a read-only root)"
    )


def test_with_tmpdir_on_a_writable_volume_it_serves(tmp_path: Path) -> None:
    # The manifests' emptyDir on /tmp; a short path, as a unix socket's path is at most 107 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="ro-", dir="/tmp"))
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = base_env() | {"TMPDIR": str(scratch)}
    server = read_only_root(tmp_path, serve_command(tmp_path, grpc_address, http_address), env, scratch)
    try:
        wait_until_serving(grpc_address, server)
    except RuntimeError:
        output, _ = server.communicate(timeout=60)
        pytest.fail(f"the server did not serve:\n{output.decode(errors='replace')}")
    try:
        created = httpx.put(f"http://{http_address}/v1/resources/ro/k", content=b"v", timeout=10)
        assert created.status_code == 201, created.text
        (private,) = scratch.iterdir()
        assert private.name.startswith("lockservice-http-")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert list(scratch.iterdir()) == []  # the private socket's directory is removed
    scratch.rmdir()


def test_a_temporary_directory_too_long_for_a_unix_socket_is_named(tmp_path: Path) -> None:
    """The adapter's private socket lives in TMPDIR; a path past 107 bytes cannot be a unix
    socket, and the server says which path and what to do, instead of gRPC's "failed to bind"."""
    scratch = tmp_path / ("d" * 100)
    scratch.mkdir()
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = base_env() | {"TMPDIR": str(scratch)}
    done = subprocess.run(
        serve_command(tmp_path, grpc_address, http_address),
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is longer than a unix socket allows (107 bytes): set TMPDIR to a shorter directory" in (
        done.stdout + done.stderr
    )
    assert list(scratch.iterdir()) == []  # the directory it made is removed
