"""Routing of keyed paths: a key may contain `:` and `/`, so a literal `:compareAndSet`,
`:acquire`, `:release`, `:refresh`, `:revoke` or `/versions` ending names the custom method (or
the versions listing), and a percent-encoded one (`%3A`, `%2F`) is part of the key. A wrong
method on any documented path is 405 with exactly the documented methods in `Allow`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from lockservice.http import create_app
from tests.http.support import PROBLEM_JSON, document, serving

_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
_SAMPLE = {
    "key": "orders/a:b",
    "name": "jobs/a:b",
    "lease_id": "0123456789abcdef0123456789abcdef",
}
# Reached only by a backend call, which this app (no server behind it) cannot make.
_IMPLICIT = {"HEAD", "OPTIONS"}


def _documented() -> dict[str, set[str]]:
    return {path: {method.upper() for method in item} for path, item in document()["paths"].items()}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: _SAMPLE[match.group(1)], path)


@pytest.fixture(scope="module")
def app_client() -> Iterator[httpx.Client]:
    with serving(create_app(target="127.0.0.1:1")) as client:
        yield client


@pytest.mark.parametrize("path", sorted(_documented()))
def test_a_wrong_method_is_405_with_exactly_the_documented_allow(app_client: httpx.Client, path: str) -> None:
    allowed = _documented()[path]
    for method in _METHODS:
        if method in allowed:
            continue
        response = app_client.request(method, _concrete(path))
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
        advertised = {m.strip() for m in response.headers["allow"].split(",")}
        assert advertised - _IMPLICIT == allowed, (method, path, response.headers["allow"])
        assert response.json()["metadata"]["allow"] == response.headers["allow"]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/resources/a%3AcompareAndSet", {"GET", "PUT", "DELETE"}),
        ("/v1/resources/docs%2Fversions", {"GET", "PUT", "DELETE"}),
        ("/v1/locks/a%3Aacquire", {"GET"}),
        ("/v1/locks/a%3Arelease", {"GET"}),
    ],
)
def test_a_percent_encoded_ending_is_part_of_the_key(
    app_client: httpx.Client, path: str, allow: set[str]
) -> None:
    response = app_client.patch(path)
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} - _IMPLICIT == allow
