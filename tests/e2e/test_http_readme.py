"""The README's HTTP adapter section keeps its promises: its mounting example runs and serves
the adapter, and its route table names every route of the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import ServerProcess
from tests.docs import section
from tests.http.support import assert_problem, documented_operations, serving

SECTION = section("HTTP adapter")


def test_the_mounting_example_serves_the_adapter_and_its_409s(server: ServerProcess, prefix: str) -> None:
    (example,) = re.findall(r"```py\n(.*?)```", SECTION, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(example.replace("127.0.0.1:50051", server.address), "README.md", "exec"), namespace)
    with serving(namespace["app"]) as client:
        path = f"/lockservice/v1/resources/{prefix}/readme"
        assert client.put(path, content=b"1", headers={"If-None-Match": "*"}).status_code == 201
        again = client.put(path, content=b"2", headers={"If-None-Match": "*"})
        assert_problem(again, 409, "RESOURCE_EXISTS", code="ALREADY_EXISTS", instance=path)


def test_the_route_table_names_every_documented_route() -> None:
    table = SECTION.split("### Routes", 1)[1].split("###", 1)[0]
    for _, path in documented_operations() - {("GET", "/openapi.json"), ("GET", "/v1/openapi.json")}:
        shown = path.replace("{lease_id}", "{id}")
        assert shown in table, path
