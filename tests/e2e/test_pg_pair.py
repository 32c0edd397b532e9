"""The failover pair runs PostgreSQL's tools (pg_ctl, initdb) while the test's client threads are
in the middle of gRPC calls. A child started then must run its tool, not die before exec: CI saw
`pg_ctl promote` exit -11 (SIGSEGV) with gRPC logging "Other threads are currently calling into
gRPC, skipping fork() handlers"."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import ServerProcess
from tests.e2e.pg_pair import run_as, server_user

RUNS = 150  # before the fix, 1 run in 12 died by a signal here (25 of 300)
CALLERS = 7  # as many client threads as the failover test runs


def test_tools_run_as_the_server_user_survive_concurrent_grpc_calls(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "sqlite").start()
    stop = threading.Event()

    def call_until_stopped() -> None:
        with grpc.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not stop.is_set():
                health.Check(health_pb2.HealthCheckRequest(), timeout=5)

    callers = [threading.Thread(target=call_until_stopped) for _ in range(CALLERS)]
    true = shutil.which("true")
    assert true is not None
    try:
        for caller in callers:
            caller.start()
        codes = [run_as(server_user(), [true], cwd=tmp_path, timeout=30).returncode for _ in range(RUNS)]
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=10)
        server.stop()
    died = {code: codes.count(code) for code in set(codes) if code != 0}
    assert died == {}, f"of {RUNS} runs, these ended by signal (negative) or exit code: {died}"
