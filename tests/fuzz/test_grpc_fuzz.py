"""Every RPC of ResourceService, LeaseService and LockService, unary and streaming, fuzzed with
generated requests (typed edge values) and with raw malformed bytes through a generic channel
method, against a real server on each backend, with and without authentication (a policy and
bearer tokens, called as each identity, a forged token and none) and with and without
`--metrics-listen`. Every answer is a success or an error a client can act on: never INTERNAL,
UNKNOWN, DATA_LOSS or UNIMPLEMENTED, always an ErrorInfo of domain "lockservice" with a reason;
and the server stays alive.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.grpc_messages import Rpc, Seeds, Shown, raw_requests, request_strategy, rpcs
from tests.fuzz.grpc_support import FuzzServer, call, check_outcome, fuzz_server, seed
from tests.fuzz.support import fuzz_settings

TYPED_EXAMPLES = 25
RAW_EXAMPLES = 10
RPCS = rpcs()
CONFIGURATIONS = [
    pytest.param(("sqlite", False, False), id="sqlite"),
    pytest.param(("sqlite", True, True), id="sqlite-auth-metrics"),
    pytest.param(("postgres", False, False), id="postgres"),
    pytest.param(("postgres", True, True), id="postgres-auth-metrics"),
]
_LOCK_WAIT_CAP = 0.05


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    backend, auth, metrics = request.param
    yield from fuzz_server(backend, auth=auth, metrics=metrics, workdir=tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def seeds(server: FuzzServer) -> Seeds:
    return seed(server, "fuzz/seeded")


@pytest.fixture(scope="module")
def channel(server: FuzzServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.process.address) as ch:
        yield ch


def _steer(rpc: Rpc, message: Message) -> Message:
    """A valid lock wait is cut to 50 ms: a generated acquire must not queue for an hour."""
    if rpc.method == "AcquireLock":
        wait = message.wait_timeout  # type: ignore[attr-defined]
        if (
            0 <= wait.seconds <= 3600
            and 0 <= wait.nanos < 1_000_000_000
            and wait.ToNanoseconds() > 50_000_000
        ):
            wait.FromNanoseconds(int(_LOCK_WAIT_CAP * 1e9))
    return message


def _identities(server: FuzzServer) -> st.SearchStrategy[str | None]:
    return st.sampled_from(["owner", "limited", "forged", None]) if server.auth else st.none()


def test_the_fuzzed_methods_are_every_method_of_the_api() -> None:
    assert {rpc.label for rpc in RPCS} == {
        f"ResourceService.{m}"
        for m in (
            "CreateResource",
            "GetResource",
            "UpdateResource",
            "DeleteResource",
            "ListResources",
            "ListResourceVersions",
            "CompareAndSet",
            "Transact",
            "Watch",
        )
    } | {
        f"LeaseService.{m}"
        for m in ("GrantLease", "KeepAlive", "RefreshLease", "RevokeLease", "GetLease", "ListLeases")
    } | {f"LockService.{m}" for m in ("AcquireLock", "ReleaseLock", "GetLock", "ListLocks")}


@pytest.mark.parametrize("rpc", RPCS, ids=[rpc.label for rpc in RPCS])
def test_generated_requests_get_actionable_answers(
    server: FuzzServer, seeds: Seeds, channel: grpc.Channel, rpc: Rpc
) -> None:
    @given(
        request=request_strategy(rpc, seeds).map(lambda m: Shown(_steer(rpc, m))),
        identity=_identities(server),
    )
    @fuzz_settings(TYPED_EXAMPLES)
    def run(request: Shown, identity: str | None) -> None:
        check_outcome(rpc, call(channel, rpc, request.value, server.metadata(identity)))

    run()
    server.alive()


@pytest.mark.parametrize("rpc", RPCS, ids=[rpc.label for rpc in RPCS])
def test_raw_malformed_bytes_get_actionable_answers(
    server: FuzzServer, seeds: Seeds, channel: grpc.Channel, rpc: Rpc
) -> None:
    @given(payload=raw_requests(rpc, seeds).map(Shown), identity=_identities(server))
    @fuzz_settings(RAW_EXAMPLES)
    def run(payload: Shown, identity: str | None) -> None:
        check_outcome(rpc, call(channel, rpc, payload.value, server.metadata(identity), raw=True))

    run()
    server.alive()
