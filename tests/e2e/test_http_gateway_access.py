"""The standalone gateway (`python -m lockservice.http`): one access-log line per request, never a
body or a query string, and `/metrics` with requests by route template and status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess
from tests.e2e.test_metrics_catalog import readme_metric_patterns, undocumented
from tests.http.support import gateway


def access_records(log: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [record for record in records if record["event"] == "http.request"]


@pytest.mark.backend_specific("sqlite", reason="the gateway's log and metrics do not depend on the store")
def test_access_log_and_metrics(server: ServerProcess, tmp_path: Path, prefix: str) -> None:
    with gateway(server, tmp_path) as process:
        with httpx.Client(base_url=process.base_url, timeout=10) as http:
            put = http.put(
                f"/v1/resources/{prefix}/k", content=b"secret-value", headers={"X-Request-Id": "req-1"}
            )
            assert (put.status_code, put.headers["x-request-id"]) == (201, "req-1")
            missing = http.get("/nowhere?token=abc")
            assert missing.status_code == 404
            generated = missing.headers["x-request-id"]
            assert len(generated) == 32
            scraped = http.get("/metrics")
        assert process.stop() == 0
        log = process.logs()
    assert scraped.status_code == 200
    assert "_created" not in scraped.text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    route = "/v1/resources/{key:path}"
    put_labels = (("method", "PUT"), ("route", route), ("status", "201"))
    assert samples["lockservice_http_requests_total", put_labels] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples["lockservice_http_requests_total", unmatched] == 1
    put_latency = (("method", "PUT"), ("route", route))
    assert samples["lockservice_http_request_duration_seconds_count", put_latency] == 1
    families = {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in text_string_to_metric_families(scraped.text)
    }
    assert "process_resident_memory_bytes" in families
    assert undocumented(families, readme_metric_patterns("Gateway access log and metrics")) == []

    records = {record["request_id"]: record for record in access_records(log)}
    put_record = records["req-1"]
    assert put_record["duration_ms"] >= 0
    del put_record["duration_ms"], put_record["timestamp"]
    assert put_record == {
        "event": "http.request",
        "level": "info",
        "method": "PUT",
        "route": route,
        "path": f"/v1/resources/{prefix}/k",
        "status": 201,
        "request_id": "req-1",
    }
    assert records[generated]["path"] == "/nowhere"
    assert (records[generated]["route"], records[generated]["status"]) == ("unmatched", 404)
    assert "secret-value" not in log
    assert "token=abc" not in log
