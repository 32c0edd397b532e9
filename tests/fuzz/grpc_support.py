"""Servers and calls for the gRPC fuzz tests: a server per (backend, configuration), seeded with
state by its owner, generic calls by method path, and the check every answer must pass."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from bench.ports import free_port
from lockservice.v1 import lease_pb2, lease_pb2_grpc, lock_pb2, lock_pb2_grpc, resource_pb2, resource_pb2_grpc
from tests.conftest import POSTGRES_ADMIN_URL, ServerProcess, postgres_available
from tests.e2e.ops_support import bearer, write_tokens
from tests.fuzz.grpc_messages import Rpc, Seeds

__all__ = [
    "FORBIDDEN_CODES",
    "CallOutcome",
    "FuzzServer",
    "call",
    "check_outcome",
    "fuzz_server",
    "seed",
]

# Codes that are never the right answer to a client's request (UNIMPLEMENTED: every method
# called here exists).
FORBIDDEN_CODES = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
CALL_TIMEOUT = 10.0

# Every identity may do everything under `own/` (its own namespace is `own/<identity>/` by
# convention) and nothing under another tenant's `secret/`; `owner` may do everything; `limited`
# may write and lock under `secret/` but not read it: whatever it is refused or conflicts with
# there must not reveal what `owner` stored.
POLICY = """
[[grant]]
identity = "owner"
prefix = ""
rights = ["read", "write", "lock"]

[[grant]]
identity = "limited"
prefix = "fuzz/"
rights = ["read", "write", "lock"]

[[grant]]
identity = "limited"
prefix = "secret/"
rights = ["write", "lock"]
"""
IDENTITIES = ("owner", "limited")


@dataclass
class FuzzServer:
    """A server under fuzz, what it was started with, and the tokens of its identities."""

    process: ServerProcess
    auth: bool
    metrics: bool
    tokens: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.process.backend}{'+auth' if self.auth else ''}{'+metrics' if self.metrics else ''}"

    def metadata(self, identity: str | None) -> tuple[tuple[str, str], ...]:
        if not self.auth or identity is None:
            return ()
        if identity == "forged":
            return bearer(secrets.token_hex(24))
        return bearer(self.tokens[identity])

    def alive(self) -> None:
        """The process still runs and serves."""
        assert self.process.process is not None
        assert self.process.process.poll() is None, f"the server died:\n{self.process.logs()[-4000:]}"
        with grpc.insecure_channel(self.process.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def fuzz_server(backend: str, *, auth: bool, metrics: bool, workdir: Path) -> Iterator[FuzzServer]:
    """A started server (a fresh database), stopped afterwards."""
    if backend == "postgres" and not postgres_available():
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI every PostgreSQL test must run")
        pytest.skip(message)
    args: list[str] = []
    tokens = {identity: secrets.token_hex(24) for identity in IDENTITIES}
    if auth:
        policy = workdir / "policy.toml"
        policy.write_text(POLICY)
        args += ["--auth-tokens", str(write_tokens(workdir, tokens)), "--auth-policy", str(policy)]
    if metrics:
        args += ["--metrics-listen", f"127.0.0.1:{free_port()}"]
    process = ServerProcess(workdir, backend, args).start()
    try:
        yield FuzzServer(process, auth, metrics, tokens)
    finally:
        process.stop()


def seed(server: FuzzServer, prefix: str, identity: str = "owner") -> Seeds:
    """Resources, a lease and a held lock under `prefix`, made by `identity` with request ids;
    their names, etags, ids and tokens as seeds for the generators, and what only `identity`
    may see (values, holder, lease id, request ids) as `secrets`."""
    metadata = server.metadata(identity)
    holder = f"holder-of-{prefix}-{secrets.token_hex(4)}"
    with grpc.insecure_channel(server.process.address) as channel:
        resources = resource_pb2_grpc.ResourceServiceStub(channel)
        leases = lease_pb2_grpc.LeaseServiceStub(channel)
        locks = lock_pb2_grpc.LockServiceStub(channel)
        keys = [f"{prefix}/a", f"{prefix}/b/c", f"{prefix}/d"]
        values = [f"value-of-{key}-{secrets.token_hex(4)}" for key in keys]
        request_ids = [f"rid-{prefix}-{n}-{secrets.token_hex(4)}" for n in range(len(keys))]
        made = [
            resources.CreateResource(
                resource_pb2.CreateResourceRequest(key=key, value=value.encode(), request_id=request_id),
                metadata=metadata,
            )
            for key, value, request_id in zip(keys, values, request_ids, strict=True)
        ]
        lease = leases.GrantLease(
            lease_pb2.GrantLeaseRequest(ttl_seconds=3600, holder=holder), metadata=metadata
        )
        lock = locks.AcquireLock(
            lock_pb2.AcquireLockRequest(name=f"{prefix}/lock", lease_id=lease.lease_id, holder=holder),
            metadata=metadata,
        )
        page = resources.ListResources(
            resource_pb2.ListResourcesRequest(prefix=f"{prefix}/", page_size=1), metadata=metadata
        )
    return Seeds(
        keys=keys,
        lease_ids=[lease.lease_id],
        lock_names=[lock.name, f"{prefix}/free"],
        etags=[m.etag for m in made],
        tokens=[lock.token],
        page_tokens=[page.next_page_token],
        request_ids=["", *request_ids],
        secrets=[*values, holder, lease.lease_id, *request_ids],
    )


@dataclass(frozen=True)
class CallOutcome:
    """What a call answered: its replies, or its error (and the decoded status)."""

    replies: Sequence[Message]
    error: grpc.RpcError | None


def _multicallable(channel: grpc.Channel, rpc: Rpc, *, raw: bool) -> Any:
    serializer = None if raw else rpc.request.SerializeToString
    deserializer = rpc.response.FromString
    if rpc.client_streaming and rpc.server_streaming:
        return channel.stream_stream(
            rpc.path, request_serializer=serializer, response_deserializer=deserializer
        )
    if rpc.server_streaming:
        return channel.unary_stream(
            rpc.path, request_serializer=serializer, response_deserializer=deserializer
        )
    return channel.unary_unary(rpc.path, request_serializer=serializer, response_deserializer=deserializer)


def call(
    channel: grpc.Channel,
    rpc: Rpc,
    request: Any,
    metadata: tuple[tuple[str, str], ...],
    *,
    raw: bool = False,
) -> CallOutcome:
    """Calls `rpc` with `request` (a message, or bytes with `raw`); for KeepAlive, `request` is
    sent twice on one stream."""
    method = _multicallable(channel, rpc, raw=raw)
    try:
        if rpc.client_streaming:
            # The stream ends when the requests do: read every reply.
            stream = method(iter([request, request]), metadata=metadata, timeout=CALL_TIMEOUT)
            return CallOutcome(list(stream), None)
        if rpc.server_streaming:
            # A watch answers at once (established, or an error) and then waits for changes.
            stream = method(request, metadata=metadata, timeout=CALL_TIMEOUT)
            return CallOutcome(_first(stream), None)
        return CallOutcome([method(request, metadata=metadata, timeout=CALL_TIMEOUT)], None)
    except grpc.RpcError as error:
        return CallOutcome([], error)


def _first(stream: Any) -> list[Message]:
    try:
        return [next(stream)]
    except StopIteration:
        return []
    finally:
        stream.cancel()


def check_outcome(rpc: Rpc, outcome: CallOutcome) -> error_details_pb2.ErrorInfo | None:
    """A failed call answers a code a client can act on, with a `google.rpc.Status` carrying an
    ErrorInfo of domain "lockservice" and a reason. Returns that ErrorInfo (None on success)."""
    error = outcome.error
    if error is None:
        return None
    code = error.code()
    described = f"{rpc.label}: {code.name} {error.details()!r:.2000}"
    assert code not in FORBIDDEN_CODES, described
    try:
        status = rpc_status.from_call(error)
    except ValueError as mismatch:  # the Status proto disagrees with the call's code or message
        raise AssertionError(f"{described}: {str(mismatch)[:2000]}") from None
    assert status is not None, f"no google.rpc.Status: {described}"
    info = error_details_pb2.ErrorInfo()
    infos = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1, f"no ErrorInfo: {described}"
    infos[0].Unpack(info)
    assert info.domain == "lockservice", described
    assert info.reason, described
    return info
