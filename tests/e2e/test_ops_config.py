"""`lockservice serve` configured by a file, variables and flags, as an operator runs it.

SQLite only: configuration is read before any store is opened.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bench.ports import free_port
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess, wait_until_serving
from tests.e2e.ops_support import scrape
from tests.e2e.support import create

pytestmark = pytest.mark.backend_specific("sqlite", reason="configuration is read before a store is opened")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
    return env | extra


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_a_config_file_sets_what_flags_and_variables_do_not(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]], prefix: str
) -> None:
    file_port, flag_port, metrics_port = free_port(), free_port(), free_port()
    config = tmp_path / "lockservice.toml"
    config.write_text(
        f'listen = "127.0.0.1:{file_port}"\ndb = "{tmp_path / "file.db"}"\n'
        f'metrics-listen = "127.0.0.1:{metrics_port}"\nlog-format = "json"\n'
    )
    process = subprocess.Popen(
        [LOCKSERVICE, "serve", "--listen", f"127.0.0.1:{flag_port}"],
        env=clean_env(LOCKSERVICE_CONFIG=str(config), LOCKSERVICE_DB=str(tmp_path / "env.db")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spawned.append(process)
    address = f"127.0.0.1:{flag_port}"  # the flag beats the file
    wait_until_serving(address, process)
    with grpc.insecure_channel(address) as channel:
        assert create(resource_pb2_grpc.ResourceServiceStub(channel), f"{prefix}/k", b"v").version == 1
    assert (tmp_path / "env.db").exists()  # the variable beats the file
    assert not (tmp_path / "file.db").exists()
    assert scrape(metrics_port)  # the file's setting, which nothing overrode
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


def test_every_problem_is_one_line_and_the_exit_status_is_2(tmp_path: Path) -> None:
    config = tmp_path / "lockservice.toml"
    cert = tmp_path / "server.crt"
    cert.write_text("not really a certificate")
    config.write_text(f'colour = "blue"\nmax-waiters = "many"\ntls-cert = "{cert}"\n')
    result = subprocess.run(
        [LOCKSERVICE, "serve", "--config", str(config), "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(LOCKSERVICE_MAX_KEY_BYTES="0"),
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"lockservice: error: --config: {config} has an unknown setting 'colour' "
        "(see lockservice serve --help)",
        f"lockservice: error: max-waiters in {config}: 'many' is not an integer",
        "lockservice: error: --max-key-bytes: 0 is outside 1..4096",
        "lockservice: error: --tls-cert and --tls-key: give both or neither",
    ]
    assert not (tmp_path / "x.db").exists()


def test_the_standard_asyncio_loop_serves_too(
    server_factory: Callable[..., ServerProcess], prefix: str
) -> None:
    server = server_factory(extra_args=["--event-loop", "asyncio"]).start()
    key = f"{prefix}/k"
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        created = create(resources, key, b"v")
        read = resources.GetResource(resource_pb2.GetResourceRequest(key=key), timeout=10)
    assert (created.version, read.value, read.version) == (1, b"v", 1)
