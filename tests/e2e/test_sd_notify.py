"""systemd's readiness protocol (`Type=notify`, deploy/systemd/lockservice.service): with
NOTIFY_SOCKET set, the server sends READY=1 once its gRPC port serves and STOPPING=1 when the
drain begins. The test plays systemd: it listens on the datagram socket itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ports import free_port
from tests.conftest import LOCKSERVICE


def test_ready_once_the_port_serves_and_stopping_at_the_drain(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(60)  # an upper bound on the wait for the datagram, not a pause
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
        env["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
        server = subprocess.Popen(
            [LOCKSERVICE, "serve", "--listen", address, "--db", str(tmp_path / "lockservice.db")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert notify.recv(4096) == b"READY=1"
            # Ready means serving: the first call after READY=1 is answered SERVING, no retry.
            with grpc.insecure_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=False
                )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            server.send_signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0


def test_without_notify_socket_nothing_is_sent(tmp_path: Path) -> None:
    """The sender itself: a no-op without NOTIFY_SOCKET, an abstract socket name with '@'."""
    from lockservice.sdnotify import notify

    assert notify("READY=1", environ={}) is False
    name = f"lockservice-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name}) is True
        assert listener.recv(64) == b"READY=1"
