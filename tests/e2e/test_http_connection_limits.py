"""The HTTP adapter bounds its connections: idle and trickling ones are closed, the count is
capped, and a flood of them never starves the gRPC port of file descriptors."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from bench.ports import free_port
from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.connection_flood import open_connections
from tests.e2e.support import ServerFactory

pytestmark = pytest.mark.backend_specific(
    "sqlite", reason="connection handling is the HTTP adapter's; the store plays no part"
)


def _serve_http(server_factory: ServerFactory, *flags: str) -> tuple[ServerProcess, tuple[str, int]]:
    port = free_port()
    server = server_factory(["--http-listen", f"127.0.0.1:{port}", *flags]).start()
    address = ("127.0.0.1", port)
    _wait_http(address)
    return server, address


def _http_get(address: tuple[str, int], path: str = "/healthz", timeout: float = 10.0) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _wait_http(address: tuple[str, int], seconds: float = 20) -> None:
    """Until a plain GET /healthz is answered 200."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if _http_get(address).startswith(b"HTTP/1.1 200 "):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the HTTP adapter never answered"
        time.sleep(0.05)


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True if the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@contextlib.contextmanager
def _idle_connections(address: tuple[str, int], count: int) -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    try:
        sockets = open_connections(address, count)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout(
    server_factory: ServerFactory,
) -> None:
    _, address = _serve_http(server_factory, "--http-header-timeout", "1")
    with socket.create_connection(address, timeout=10) as silent:
        started = time.monotonic()
        assert _closed_by_peer(silent, within=10)
        assert 0.5 <= time.monotonic() - started < 8


def test_a_trickling_request_is_closed_at_the_header_timeout_though_it_keeps_sending(
    server_factory: ServerFactory,
) -> None:
    _, address = _serve_http(server_factory, "--http-header-timeout", "1")
    with socket.create_connection(address, timeout=10) as trickle:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if _closed_by_peer(trickle, within=0.1):
                closed = True
                break
        assert closed, "a request whose headers never end was kept open for over 20 s"
        assert time.monotonic() - started < 8


def test_a_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    server_factory: ServerFactory,
) -> None:
    _, address = _serve_http(server_factory, "--http-keepalive-timeout", "1")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _read_response(sock)
        assert reply.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _closed_by_peer(sock, within=10)
        assert 0.5 <= time.monotonic() - started < 4  # uvicorn's own default is 5 s


def test_connections_over_the_cap_are_closed_at_once_and_served_again_when_room_returns(
    server_factory: ServerFactory,
) -> None:
    _, address = _serve_http(server_factory, "--http-max-connections", "20", "--http-header-timeout", "30")
    with _idle_connections(address, 20) as held:
        assert len(held) == 20
        time.sleep(0.5)  # let the server accept all of them
        with socket.create_connection(address, timeout=10) as extra:
            assert _closed_by_peer(extra, within=5)
        # The held ones are still open: the cap refuses newcomers, it does not drop the admitted.
        assert not _closed_by_peer(held[0], within=0.2)
    _wait_http(address, seconds=10)  # room again once they are gone


def test_twenty_thousand_idle_http_connections_do_not_stop_a_new_grpc_client_being_served_within_a_second(
    server_factory: ServerFactory, prefix: str
) -> None:
    """20,000 idle HTTP connections (held by two processes, 10,000 each: more than this one may
    open), against a server that may open only 4,096 files: it admits its cap of 1,000, closes
    the rest at once, and a new gRPC client is served within a second."""
    port = free_port()
    server = server_factory(["--http-listen", f"127.0.0.1:{port}", "--http-header-timeout", "120"])
    server.max_open_files = 4096
    server.start()
    _wait_http(("127.0.0.1", port))
    assert server.process is not None
    with contextlib.ExitStack() as floods:
        holders = [
            floods.enter_context(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.e2e.connection_flood", "127.0.0.1", str(port), "10000"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(2)
        ]
        for holder in holders:
            floods.callback(holder.wait, timeout=60)
            assert holder.stdin is not None
            floods.callback(holder.stdin.close)
        opened = [int(holder.stdout.readline().split()[1]) for holder in holders if holder.stdout]
        assert sum(opened) >= 19_900, opened
        time.sleep(1.0)  # the server has accepted (and closed all but its cap of) them all
        # The adapter admitted at most its default cap (1000); the rest were closed at once.
        assert _open_descriptors(server.process.pid) < 1_000 + 200
        started = time.monotonic()
        with grpc.insecure_channel(server.address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            created = stub.CreateResource(
                resource_pb2.CreateResourceRequest(key=f"{prefix}/k", value=b"v"),
                timeout=1.0,
                wait_for_ready=True,
            )
        assert created.version == 1
        assert time.monotonic() - started < 1.0
