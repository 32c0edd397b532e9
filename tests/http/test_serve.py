"""Serving: listen addresses, a taken port, the gateway's command line."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lockservice.http import create_app, local_target, main_gateway, run_http
from lockservice.http.serve import DESCRIPTOR_RESERVE, parse_listen


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("unix:/run/ls.sock") == Path("/run/ls.sock")
    for bad in ("8080", "host:", ":80", "host:http", "host:70000", "unix:"):
        with pytest.raises(ValueError, match=r"HOST:PORT|unix"):
            parse_listen(bad)


def test_local_target_dials_loopback_for_a_wildcard_listen() -> None:
    assert local_target("0.0.0.0:50051") == "127.0.0.1:50051"
    assert local_target("[::]:50051") == "[::1]:50051"
    assert local_target("10.0.0.5:50051") == "10.0.0.5:50051"
    assert local_target("unix:/run/lockservice.sock") == "unix:/run/lockservice.sock"


def test_run_http_serves_on_a_picked_port_and_stops() -> None:
    async def scenario() -> tuple[int, dict[str, str]]:
        server = await run_http(create_app(target="127.0.0.1:1"), "127.0.0.1:0", grace=1)
        try:
            async with httpx.AsyncClient(base_url=f"http://{server.address}") as client:
                response = await client.get("/healthz")
        finally:
            await server.stop()
        assert server.done
        return response.status_code, response.json()

    assert asyncio.run(scenario()) == (200, {"status": "ok"})


def test_run_http_on_a_taken_port_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            await run_http(create_app(target="127.0.0.1:1"), f"127.0.0.1:{port}")

        with pytest.raises(OSError):
            asyncio.run(scenario())


def test_the_gateway_refuses_bad_flags_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_gateway(["--listen", "nowhere"]) == 2
    assert "--listen" in capsys.readouterr().err
    assert main_gateway(["--http-max-value-bytes", "0"]) == 2
    assert main_gateway(["--help"]) == 0


def test_bad_variables_are_usage_errors_too(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("LOCKSERVICE_HTTP_MAX_VALUE_BYTES", "abc"),
        ("LOCKSERVICE_GRACE_PERIOD", "-1"),
        ("LOCKSERVICE_LOG_LEVEL", "loud"),
        ("LOCKSERVICE_HTTP_LISTEN", "nowhere"),
    ):
        with monkeypatch.context() as patched:
            patched.setenv(name, value)
            assert main_gateway([]) == 2, name


def test_the_gateway_checks_its_tls_flags_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.pem")
    assert main_gateway(["--tls-cert", missing, "--tls-client-ca", missing, "--target-key", missing]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m lockservice.http: error: --tls-cert and --tls-key: give both or neither",
        "python -m lockservice.http: error: --target-cert and --target-key: give both or neither",
        f"python -m lockservice.http: error: --tls-cert: {missing} is not a file",
        f"python -m lockservice.http: error: --tls-client-ca: {missing} is not a file",
        f"python -m lockservice.http: error: --target-key: {missing} is not a file",
    ]
    assert main_gateway(["--tls-client-ca", missing, "--target-server-name", "lockservice"]) == 2
    assert capsys.readouterr().err.splitlines()[:2] == [
        "python -m lockservice.http: error: --tls-client-ca: client certificates need HTTPS; "
        "give --tls-cert and --tls-key",
        "python -m lockservice.http: error: --target-server-name: needs TLS to the target; "
        "give --target-ca or --target-tls",
    ]


def test_run_http_with_reuse_port_shares_a_port_and_without_it_refuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = create_app(target="127.0.0.1:1")
        first = await run_http(app, "127.0.0.1:0", grace=1, reuse_port=True)
        try:
            second = await run_http(app, first.address, grace=1, reuse_port=True)
            await second.stop()
            with pytest.raises(OSError):
                await run_http(app, first.address, grace=1)
        finally:
            await first.stop()

    asyncio.run(scenario())


def test_descriptor_headroom_raises_the_soft_limit_and_keeps_a_reserve_below_it() -> None:
    # In a child process: a lowered hard limit cannot be raised again. The child lowers its own
    # (a preexec_fn would make Python fork() instead of vfork(): unsafe beside gRPC's threads).
    limit = DESCRIPTOR_RESERVE + 300
    code = (
        f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({limit - 100}, {limit})); "
        "from lockservice.http.serve import descriptor_headroom; "
        "print(descriptor_headroom(1000), descriptor_headroom(200), "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert output.stdout.split()[-3:] == ["300", "200", str(limit)]
    assert "http.connection_cap_lowered" in output.stdout + output.stderr


def test_the_gateway_refuses_connection_bounds_that_cannot_work(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (
        ["--http-max-connections", "0"],
        ["--http-header-timeout", "0"],
        ["--http-keepalive-timeout", "nan"],
    ):
        assert main_gateway(flags) == 2
        assert flags[0] in capsys.readouterr().err
