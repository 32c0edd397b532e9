"""An unexpected fault is logged with its traceback, but never with the frames' local variables:
they hold the request's key, value, page token (issue #14, item 5; "Logs" in docs/operations.md).

The fault is provoked in a real server process by patching one core function in that process
(`write_version`, which every create runs) to raise: no test-only hook in the production code.
"""

from __future__ import annotations

import json
import sys

import grpc
import pytest

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import ServerFactory, expect_failure

SECRET_VALUE = b"value-bytes-that-must-not-be-logged"

_PATCHED_SERVE = """
import sys
import lockservice.core.resources as resources
from lockservice.cli import main

def _write(txn, key, value, content_type, lease_id):
    raise RuntimeError("the store exploded")

resources.write_version = _write
sys.exit(main(sys.argv[1:]))
"""


class FaultyServer(ServerProcess):
    """`lockservice serve` whose every create fails with an unexpected exception."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", _PATCHED_SERVE, *super().command()[1:]]


@pytest.mark.backend_specific("sqlite", reason="the fault and its log are above the store")
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_an_unexpected_fault_logs_its_traceback_without_locals(
    server_factory: ServerFactory, log_format: str
) -> None:
    made = server_factory(["--log-format", log_format])
    server = FaultyServer(made.workdir, made.backend, made.extra_args)
    server.start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = resource_pb2_grpc.ResourceServiceStub(channel)
            failure = expect_failure(
                stub.CreateResource,
                resource_pb2.CreateResourceRequest(key="faults/k", value=SECRET_VALUE),
                grpc.StatusCode.INTERNAL,
                "INTERNAL_ERROR",
            )
            assert "exploded" not in failure.message
    finally:
        server.stop()
    logs = server.logs()
    assert "the store exploded" in logs  # the cause is logged...
    assert "_write" in logs  # ... with its frames ...
    assert SECRET_VALUE.decode() not in logs  # ... but not what the frames held
    assert repr(SECRET_VALUE)[2:20] not in logs
    if log_format == "json":
        (line,) = [json.loads(text) for text in logs.splitlines() if '"rpc failed"' in text]
        (exception,) = line["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert [frame["name"] for frame in exception["frames"]][-1] == "_write"
        assert all("locals" not in frame for frame in exception["frames"])
    else:
        assert "Traceback" in logs and "locals" not in logs
