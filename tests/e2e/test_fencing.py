"""Fencing end to end: a holder paused past its lease cannot write after it resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.e2e.support import expect_failure, get

# A client that takes the lock, reports its token, then (after being stopped and resumed by the
# test) tries a fenced write with it and prints the outcome.
HOLDER = """
import sys
import grpc
from lockservice.v1 import lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
target, name, key = sys.argv[1:4]
with grpc.insecure_channel(target) as channel:
    lock = lock_pb2_grpc.LockServiceStub(channel).AcquireLock(
        lock_pb2.AcquireLockRequest(name=name, ttl_seconds=1, holder="paused"), timeout=10)
    print(lock.token, flush=True)
    sys.stdin.readline()  # the test stops us here, lets the lease lapse, resumes us, then writes a line
    try:
        resource_pb2_grpc.ResourceServiceStub(channel).UpdateResource(
            resource_pb2.UpdateResourceRequest(key=key, value=b"from-paused", allow_missing=True,
                fence=lock_pb2.Fence(lock_name=name, token=lock.token)), timeout=10)
        print("WRITTEN", flush=True)
    except grpc.RpcError as error:
        print(error.code().name, error.details(), flush=True)
"""


def test_a_holder_stopped_past_its_ttl_loses_the_lock_and_its_write_is_refused(
    server: ServerProcess,
    locks: lock_pb2_grpc.LockServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    prefix: str,
    tmp_path: Path,
) -> None:
    name, key = f"{prefix}/lock", f"{prefix}/data"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    with subprocess.Popen(
        [sys.executable, str(script), server.address, name, key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        _run_paused_holder(holder, locks, resources, name, key)


def _run_paused_holder(
    holder: subprocess.Popen[str],
    locks: lock_pb2_grpc.LockServiceStub,
    resources: resource_pb2_grpc.ResourceServiceStub,
    name: str,
    key: str,
) -> None:
    try:
        assert holder.stdout is not None and holder.stdin is not None
        old_token = int(holder.stdout.readline())
        holder.send_signal(signal.SIGSTOP)
        # Another client queues; it gets the lock once the stopped holder's 1 s lease runs out
        # (within its 30 s wait: how soon after the deadline is tests/core/test_locks.py's).
        wait = Duration(seconds=30)
        new = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=name, ttl_seconds=30, holder="successor", wait_timeout=wait),
            timeout=40,
        )
        assert new.token == old_token + 1
        written = resources.UpdateResource(
            resource_pb2.UpdateResourceRequest(
                key=key,
                value=b"from-successor",
                allow_missing=True,
                fence=lock_pb2.Fence(lock_name=name, token=new.token),
            ),
            timeout=10,
        )
        holder.send_signal(signal.SIGCONT)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        outcome = holder.stdout.readline().strip()
        assert (
            outcome
            == f"ABORTED fence token {old_token} is stale: lock {name} is now held with token {new.token}"
        )
        assert holder.wait(timeout=10) == 0
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
            holder.wait(timeout=10)
    after = get(resources, key)
    assert (after.value, after.version, after.mod_revision) == (b"from-successor", 1, written.mod_revision)


def test_a_fence_whose_lease_expired_is_refused_before_anyone_else_acquires(
    locks: lock_pb2_grpc.LockServiceStub, resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    name, key = f"{prefix}/lock", f"{prefix}/data"
    lock = locks.AcquireLock(lock_pb2.AcquireLockRequest(name=name, ttl_seconds=1), timeout=10)
    fence = lock_pb2.Fence(lock_name=name, token=lock.token)
    resources.CreateResource(resource_pb2.CreateResourceRequest(key=key, value=b"v1"), timeout=10)
    ok = resources.UpdateResource(
        resource_pb2.UpdateResourceRequest(key=key, value=b"v2", fence=fence), timeout=10
    )
    assert ok.version == 2
    time.sleep(1.2)
    for call, request in (
        (resources.UpdateResource, resource_pb2.UpdateResourceRequest(key=key, value=b"v3", fence=fence)),
        (resources.DeleteResource, resource_pb2.DeleteResourceRequest(key=key, fence=fence)),
        (
            resources.CompareAndSet,
            resource_pb2.CompareAndSetRequest(key=key, expected_version=2, value=b"v3", fence=fence),
        ),
        (
            resources.Transact,
            resource_pb2.TransactRequest(
                operations=[resource_pb2.Operation(put=resource_pb2.PutOperation(key=key, value=b"v3"))],
                fence=fence,
            ),
        ),
    ):
        failure = expect_failure(call, request, grpc.StatusCode.ABORTED, "STALE_FENCE")
        assert failure.metadata["lock_name"] == name and failure.metadata["token"] == str(lock.token)
    assert get(resources, key).version == 2


def test_a_fence_on_a_lock_never_taken_is_stale(
    resources: resource_pb2_grpc.ResourceServiceStub, prefix: str
) -> None:
    failure = expect_failure(
        resources.UpdateResource,
        resource_pb2.UpdateResourceRequest(
            key=f"{prefix}/k",
            value=b"x",
            allow_missing=True,
            fence=lock_pb2.Fence(lock_name=f"{prefix}/never", token=1),
        ),
        grpc.StatusCode.ABORTED,
        "STALE_FENCE",
    )
    assert failure.message == f"fence token 1 is stale: lock {prefix}/never was never acquired"
