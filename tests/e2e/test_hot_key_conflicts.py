"""Many clients on one key: every loser of one compare gets the same refusal, byte for byte,
whichever path decided it. On SQLite a loser queued before the winner was decided is refused by
the writer; one that arrives while the winner commits waits for it and is refused from memory;
one that arrives later is refused from memory at once. On PostgreSQL the database decides all.
"""

from __future__ import annotations

import threading

import grpc
from grpc_status import rpc_status

from lockservice.v1 import resource_pb2, resource_pb2_grpc
from tests.e2e.support import assert_conflict_is, conflict_of, create, get
from tests.grpc_errors import decode

Stub = resource_pb2_grpc.ResourceServiceStub
CLIENTS = 48


def _compare_and_set(resources: Stub, key: str, value: bytes) -> resource_pb2.Resource | grpc.RpcError:
    try:
        reply: resource_pb2.Resource = resources.CompareAndSet(
            resource_pb2.CompareAndSetRequest(key=key, expected_version=1, value=value), timeout=30
        )
    except grpc.RpcError as error:
        return error
    return reply


def _body(error: grpc.RpcError) -> tuple[grpc.StatusCode, bytes]:
    """The code and the whole google.rpc.Status (message, ErrorInfo, ConflictDetail) as sent."""
    status = rpc_status.from_call(error)
    assert status is not None
    return error.code(), status.SerializeToString()


def test_every_loser_of_one_version_gets_the_same_conflict_body(resources: Stub, prefix: str) -> None:
    key = f"{prefix}/hot"
    create(resources, key, b"0")
    outcomes: dict[int, resource_pb2.Resource | grpc.RpcError] = {}
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        start.wait(timeout=30)
        outcomes[index] = _compare_and_set(resources, key, str(index).encode())

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    wins = [outcome for outcome in outcomes.values() if isinstance(outcome, resource_pb2.Resource)]
    losses = [outcome for outcome in outcomes.values() if isinstance(outcome, grpc.RpcError)]
    assert len(wins) == 1 and len(losses) == CLIENTS - 1
    winner = wins[0]
    assert winner.version == 2 and get(resources, key) == winner

    late = _compare_and_set(resources, key, b"late")  # surely from memory on SQLite
    assert isinstance(late, grpc.RpcError)
    bodies = {_body(loss) for loss in losses}
    assert bodies == {_body(late)}

    failure = decode(late)
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "VERSION_MISMATCH")
    assert failure.message == f"{key} is at version 2, not at the expected version 1"
    assert failure.metadata == {"key": key, "current_version": "2"}
    detail = conflict_of(failure)
    assert_conflict_is(detail, key, winner, "version 1")
    assert detail.revision == winner.mod_revision
