"""Helpers for the HTTP adapter's tests: a gateway process in front of a real server, and
assertions on problem+json answers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.ports import free_port
from lockservice.http import create_app, run_http
from lockservice.http.openapi import openapi_document
from lockservice.http.routes import KeyedRoute
from tests.conftest import ServerProcess

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://lockservice.dev/problems/"


def document() -> Any:
    """The OpenAPI document as plain JSON data."""
    return json.loads(json.dumps(openapi_document()))


def documented_operations() -> set[tuple[str, str]]:
    """`(METHOD, path)` of every operation the OpenAPI document describes."""
    return {(method.upper(), path) for path, item in document()["paths"].items() for method in item}


def app_operations() -> set[tuple[str, str]]:
    """`(METHOD, path template)` of every operation the adapter routes (HEAD left out)."""
    operations: set[tuple[str, str]] = set()
    for route in create_app(target="127.0.0.1:1").routes:
        if isinstance(route, KeyedRoute):
            operations |= route.operations
            continue
        assert isinstance(route, Route)
        operations |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return operations


class GatewayProcess:
    """`python -m lockservice.http` on a free loopback port, fronting `target`."""

    def __init__(self, target: str, log_path: Path, extra_args: list[str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "lockservice.http",
            "--target",
            target,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--log-format",
            "json",
            "--grace-period",
            "1",
            *(extra_args or []),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKSERVICE_")}
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 20.0) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise
        return self.process.returncode


@contextmanager
def gateway(
    server: ServerProcess, workdir: Path, extra_args: list[str] | None = None
) -> Iterator[GatewayProcess]:
    """A ready gateway in front of `server`, stopped afterwards."""
    process = GatewayProcess(server.address, workdir / f"gateway-{time.monotonic_ns()}.log", extra_args)
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@contextmanager
def serving(app: ASGIApp) -> Iterator[httpx.Client]:
    """`app` served by `run_http` on a loop of its own, and a client to it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        server = asyncio.run_coroutine_threadsafe(run_http(app, "127.0.0.1:0", grace=1), loop).result(20)
        try:
            with httpx.Client(base_url=f"http://{server.address}", timeout=10.0) as client:
                yield client
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(20)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


_running: dict[tuple[str, tuple[str, ...]], GatewayProcess] = {}


def _stop_all_gateways() -> None:
    """SIGTERM every shared gateway at once, then wait for each (a stop takes a moment)."""
    for process in _running.values():
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
    for process in _running.values():
        process.stop()
    _running.clear()


def gateway_client_fixture(*extra_args: str) -> Any:
    """A fixture: an httpx.Client to a gateway (started with `extra_args`) in front of the
    `server` fixture. One gateway per server and arguments, shared by every test module that
    asks for it and stopped at the end of the session. In a test module:
    `http = gateway_client_fixture()`."""

    @pytest.fixture
    def client(
        server: ServerProcess, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
    ) -> Iterator[httpx.Client]:
        key = (server.address, extra_args)
        process = _running.get(key)
        if process is None or process.process.poll() is not None:
            if not _running:
                request.session.addfinalizer(_stop_all_gateways)
            log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
            process = GatewayProcess(server.address, log_path, list(extra_args)).wait_ready()
            _running[key] = process
        with httpx.Client(base_url=process.base_url, timeout=10.0) as http:
            yield http

    return client


def assert_problem(
    response: httpx.Response,
    status: int,
    reason: str,
    *,
    code: str,
    instance: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """`response` is a problem+json answer with exactly this status, reason, code and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason
    assert body["code"] == code
    assert body["type"] == TYPE_BASE + reason.lower().replace("_", "-")
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if instance is not None:
        assert body["instance"] == instance
    if field is not None:
        assert body["metadata"]["field"] == field
    return body


class SseReader:
    """Reads Server-Sent Events messages (comments skipped) from a streamed response, each as its
    fields (`id`, `event`, `data`). The client's read timeout bounds each wait."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def next(self, count: int) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                continue
            if line == "":
                if fields:
                    messages.append(fields)
                    fields = {}
                    if len(messages) == count:
                        return messages
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError(f"the stream ended after {messages}")
