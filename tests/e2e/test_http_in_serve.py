"""`lockservice serve --http-listen`: the HTTP adapter in the server's own process."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from bench.ports import free_port
from tests.e2e.support import ServerFactory


def _request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_serve_with_http_listen_answers_http_and_409s_beside_grpc(
    server_factory: ServerFactory, prefix: str
) -> None:
    http = f"127.0.0.1:{free_port()}"
    server = server_factory(["--http-listen", http]).start()
    url = f"http://{http}/v1/resources/{prefix}/doc"
    deadline = time.monotonic() + 10
    while True:
        try:
            status, headers, _ = _request(
                "PUT", url, b"v1", {"If-None-Match": "*", "Content-Type": "text/plain"}
            )
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the HTTP adapter never answered"
            time.sleep(0.05)
    assert (status, headers["etag"]) == (201, headers["etag"])
    created_etag = headers["etag"]
    status, headers, body = _request("PUT", url, b"v2", {"If-None-Match": "*"})
    problem = json.loads(body)
    assert (status, headers["content-type"], headers["etag"]) == (
        409,
        "application/problem+json",
        created_etag,
    )
    assert (problem["reason"], problem["conflict"]["current_version"]) == ("RESOURCE_EXISTS", 1)
    status, headers, body = _request("GET", url)
    assert (status, body, headers["content-type"]) == (200, b"v1", "text/plain")
    assert server.stop() == 0


def test_the_in_process_adapter_documents_the_servers_own_limits(server_factory: ServerFactory) -> None:
    http = f"127.0.0.1:{free_port()}"
    server = server_factory(
        ["--http-listen", http, "--max-key-bytes", "100", "--max-lease-ttl", "60"]
    ).start()
    deadline = time.monotonic() + 10
    while True:
        try:
            status, _, body = _request("GET", f"http://{http}/v1/openapi.json")
            break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the HTTP adapter never answered"
            time.sleep(0.05)
    components = json.loads(body)["components"]
    assert status == 200
    assert components["parameters"]["Key"]["schema"]["maxLength"] == 100
    assert components["schemas"]["GrantLeaseRequest"]["properties"]["ttl_seconds"]["maximum"] == 60
    assert server.stop() == 0
