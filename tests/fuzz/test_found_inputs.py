"""Inputs the fuzzers found that other suites do not cover, each with the answer it must get."""

from __future__ import annotations

import httpx

from tests.http.support import assert_problem, gateway_client_fixture

http = gateway_client_fixture()


def test_an_http_lock_wait_past_any_deadline_is_400_not_504(http: httpx.Client, prefix: str) -> None:
    answer = http.post(
        f"/v1/locks/{prefix}/wait:acquire", json={"ttl_seconds": 30, "wait_timeout_seconds": 1e10}
    )
    assert_problem(answer, 400, "INVALID_ARGUMENT", code="INVALID_ARGUMENT")
