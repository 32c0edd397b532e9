"""The app's own refusals and faults, in process (no backend is ever called): clear problem+json,
never a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from lockservice.http import HttpOptions, create_app


class _BrokenChannel:
    """A channel whose every call fails with an unexpected exception."""

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals at /srv/db")

        return call


def request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def test_an_unexpected_fault_is_a_generic_500_problem() -> None:
    app = create_app(channel=_BrokenChannel())  # type: ignore[arg-type]
    response = request(app, "GET", "/v1/resources/a")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://lockservice.dev/problems/internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "internal error in the HTTP adapter; it logged the cause",
        "instance": "/v1/resources/a",
        "code": "INTERNAL",
        "reason": "INTERNAL_ERROR",
    }
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "reason"),
    [
        (
            "PUT",
            "/v1/resources/a",
            {"content": b"x" * 11, "headers": {"If-Match": "*"}},
            413,
            "BODY_TOO_LARGE",
        ),
        (
            "PUT",
            "/v1/resources/a",
            {"content": b"x", "headers": {"If-Match": "*", "Content-Length": "x"}},
            400,
            "INVALID_ARGUMENT",
        ),
        ("PUT", "/v1/resources/a", {"content": b"x"}, 428, "PRECONDITION_REQUIRED"),
        (
            "POST",
            "/v1/leases",
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "POST",
            "/v1/leases",
            {"content": b"{", "headers": {"Content-Type": "application/json"}},
            400,
            "INVALID_ARGUMENT",
        ),
        ("PATCH", "/v1/leases", {}, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/nowhere", {}, 404, "ROUTE_NOT_FOUND"),
    ],
)
def test_refusals_before_any_call(
    method: str, path: str, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    options = HttpOptions(require_preconditions=True, max_value_bytes=10)
    app = create_app(channel=_BrokenChannel(), options=options)  # type: ignore[arg-type]
    response = request(app, method, path, **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert response.json()["instance"] == path
