"""Running the server as an operator does: health, reflection, signals, logs, configuration."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bench.ports import free_port
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import LOCKSERVICE, ServerProcess, wait_until_serving
from tests.e2e.support import ServerFactory, assert_missing, create, get, update

Stub = resource_pb2_grpc.ResourceServiceStub
SERVICES = ("lockservice.v1.ResourceService", "lockservice.v1.LeaseService", "lockservice.v1.LockService")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without LOCKSERVICE_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
    env.update(extra)
    return env


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts by hand; killed at teardown if still running."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def run_serve(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `lockservice serve ARGS` that must exit by itself (bad configuration)."""
    return subprocess.run(
        [LOCKSERVICE, "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env if env is not None else clean_env(),
        check=False,
    )


# -- health and reflection -------------------------------------------------------------------------


def test_health_check_is_serving(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "lockservice.v1.ResourceService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
        assert len(replies) == 1
        names = {service.name for service in replies[0].list_services_response.service}
        assert set(SERVICES) <= names
        assert "grpc.health.v1.Health" in names

        # The descriptors are served too, so a client can be generated from a running server.
        replies = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICES[0])]), timeout=5
            )
        )
        assert replies[0].file_descriptor_response.file_descriptor_proto


# -- signals ---------------------------------------------------------------------------------------


def test_sigterm_exits_0_and_keeps_the_data(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        create(resources, f"{prefix}/a", b"a1")
        a2 = update(resources, f"{prefix}/a", b"a2")
        b1 = create(resources, f"{prefix}/b", b"b1")
    assert server.stop() == 0

    server.start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        assert get(resources, f"{prefix}/a") == a2
        assert get(resources, f"{prefix}/b") == b1
        assert create(resources, f"{prefix}/c", b"c").mod_revision == b1.mod_revision + 1

    # SIGINT (Ctrl-C) is as graceful as SIGTERM.
    assert server.process is not None
    server.signal(signal.SIGINT)
    assert server.process.wait(timeout=15) == 0


def test_calls_in_flight_at_sigterm_complete(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory().start()
    writers = 32
    acked: dict[str, resource_pb2.Resource] = {}
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers + 1)

    def writer(index: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            resources = resource_pb2_grpc.ResourceServiceStub(channel)
            create(resources, f"{prefix}/warm{index}", b"")  # connected before the signal
            barrier.wait(timeout=20)
            for n in range(200):  # bounded; the drain stops it long before
                key = f"{prefix}/w{index}/{n}"
                try:
                    written = create(resources, key, f"{index}.{n}".encode())
                except grpc.RpcError as error:
                    with lock:
                        codes.append(error.code())
                    return
                with lock:
                    acked[key] = written

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=20)
    time.sleep(0.05)  # let the writers get calls in flight
    assert server.process is not None
    server.signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)

    # Calls that arrived after the drain began were refused as UNAVAILABLE; none failed otherwise.
    assert set(codes) <= {grpc.StatusCode.UNAVAILABLE}, codes
    assert acked

    server.start()
    with grpc.insecure_channel(server.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        for key, written in acked.items():
            assert get(resources, key) == written


# -- logs ------------------------------------------------------------------------------------------


def rpc_lines(server: ServerProcess, prefix: str) -> list[dict[str, Any]]:
    lines = []
    for line in server.logs().splitlines():
        if prefix not in line:
            continue
        record = json.loads(line)  # every line that mentions the test is one JSON object
        if record.get("event") == "rpc":
            lines.append(record)
    return lines


def test_one_json_log_line_per_call_without_values(
    server: ServerProcess, resources: Stub, prefix: str
) -> None:
    secret = b"SECRET-VALUE-123"
    key = f"{prefix}/secret"
    request_id = str(uuid.uuid4())
    create(resources, key, secret, request_id=request_id)
    get(resources, key)
    resources.CompareAndSet(
        resource_pb2.CompareAndSetRequest(key=key, expected_value=secret, value=secret + b"-2"), timeout=10
    )
    assert_missing(resources, f"{prefix}/missing")
    resources.ListResources(resource_pb2.ListResourcesRequest(prefix=f"{prefix}/"), timeout=10)

    expected = [
        ("CreateResource", "OK", key),
        ("GetResource", "OK", key),
        ("CompareAndSet", "OK", key),
        ("GetResource", "NOT_FOUND", f"{prefix}/missing"),
        ("ListResources", "OK", f"{prefix}/"),
    ]
    deadline = time.monotonic() + 5
    lines = rpc_lines(server, prefix)
    while len(lines) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = rpc_lines(server, prefix)
    assert [(r["method"], r["code"], r["subject"]) for r in lines] == expected
    for record in lines:
        assert isinstance(record["duration_ms"], int | float)
        assert record["duration_ms"] >= 0
        assert record["level"] == "info"
        assert "timestamp" in record
    assert lines[0]["request_id"] == request_id
    assert lines[3]["reason"] == "RESOURCE_NOT_FOUND"

    logs = server.logs()
    for form in (secret, base64.b64encode(secret), secret.hex().encode()):
        assert form.decode() not in logs


# -- configuration ---------------------------------------------------------------------------------


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_listen_address_fails_at_start_with_exit_code_2(tmp_path: Path) -> None:
    result = run_serve(["--listen", "nonsense", "--db", str(tmp_path / "x.db")])
    assert_one_clear_line(result, "--listen", "nonsense")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("versions", ["0", "-1", "10001"])
def test_bad_history_versions_fails_at_start_with_exit_code_2(tmp_path: Path, versions: str) -> None:
    result = run_serve(
        [
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--db",
            str(tmp_path / "x.db"),
            "--history-versions",
            versions,
        ]
    )
    assert_one_clear_line(result, "--history-versions", versions)


def test_bad_db_directory_fails_at_start_with_exit_code_2(tmp_path: Path) -> None:
    result = run_serve(["--listen", f"127.0.0.1:{free_port()}", "--db", str(tmp_path / "no" / "x.db")])
    assert_one_clear_line(result, "--db")


def test_bad_environment_variable_fails_like_the_flag(tmp_path: Path) -> None:
    result = run_serve(["--db", str(tmp_path / "x.db")], env=clean_env(LOCKSERVICE_LISTEN="nonsense"))
    assert_one_clear_line(result, "--listen", "nonsense")


def test_listen_environment_variable_is_honoured(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]], prefix: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    db = tmp_path / "env.db"
    process = subprocess.Popen(
        [LOCKSERVICE, "serve", "--log-format", "json"],
        env=clean_env(LOCKSERVICE_LISTEN=address, LOCKSERVICE_DB=str(db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spawned.append(process)
    wait_until_serving(address, process)
    with grpc.insecure_channel(address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        assert create(resources, f"{prefix}/k", b"v").version == 1
    assert db.exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


def test_flag_beats_environment_variable(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]], prefix: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [LOCKSERVICE, "serve", "--listen", address, "--db", str(tmp_path / "flag.db")],
        env=clean_env(LOCKSERVICE_LISTEN="nonsense", LOCKSERVICE_DB=str(tmp_path / "env.db")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spawned.append(process)
    wait_until_serving(address, process)
    with grpc.insecure_channel(address) as channel:
        assert create(resource_pb2_grpc.ResourceServiceStub(channel), f"{prefix}/k", b"v").version == 1
    assert (tmp_path / "flag.db").exists()
    assert not (tmp_path / "env.db").exists()


@pytest.mark.backend_specific(
    "sqlite", reason="one process owns a SQLite file; PostgreSQL replicas share a database by design"
)
def test_second_server_on_the_same_db_refuses_to_start(server_factory: ServerFactory, prefix: str) -> None:
    first = server_factory().start()
    result = run_serve(
        ["--listen", f"127.0.0.1:{free_port()}", "--db", str(first.db), "--log-format", "json"]
    )
    assert result.returncode == 2, result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr
    # The first server is unharmed.
    with grpc.insecure_channel(first.address) as channel:
        assert create(resource_pb2_grpc.ResourceServiceStub(channel), f"{prefix}/k", b"v").version == 1


def test_unix_socket_listen_address_serves(server_factory: ServerFactory, prefix: str) -> None:
    server = server_factory()
    socket_path = server.workdir / "ls.sock"
    server.address = f"unix:{socket_path}"  # used for --listen and by the readiness probe
    server.start()
    assert socket_path.exists()
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        created = create(resources, f"{prefix}/k", b"over a unix socket")
        assert get(resources, f"{prefix}/k") == created
    assert server.stop() == 0
