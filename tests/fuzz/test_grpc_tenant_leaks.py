"""With a policy loaded, no answer reveals the state of a key, lock or request id outside the
caller's read rights.

`owner` seeds resources (with request ids), a lease and a held lock under `secret/`; `limited`,
which may write and lock there but not read, then calls every RPC with generated requests mixing
in `owner`'s keys, lock names, etags, tokens, lease id, page token and request ids. For every
answer about a key or lock under `secret/`:
- a ConflictDetail carries no version, etag, value, holder, token or lease id;
- no error message, ErrorInfo metadata, status detail or reply contains `owner`'s values,
  holder name, lease id or request ids, nor its lock's token, unless the request itself did.

SQLite only: authorization and what a conflict reveals are decided before and above the store,
the same for every backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import given

from lockservice.v1 import errors_pb2
from tests.fuzz.grpc_messages import Rpc, Seeds, Shown, request_strategy, rpcs
from tests.fuzz.grpc_support import CallOutcome, FuzzServer, call, fuzz_server, seed
from tests.fuzz.support import fuzz_settings

EXAMPLES = 30
SECRET_PREFIX = "secret/"
_CONFLICT_STATE = ("current_version", "current_etag", "current_value", "holder", "current_token", "lease_id")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    yield from fuzz_server("sqlite", auth=True, metrics=False, workdir=tmp_path_factory.mktemp("leaks"))


def _leaks(rpc: Rpc, request_text: str, outcome: CallOutcome, owner: Seeds) -> list[str]:
    """What `outcome` reveals of `owner`'s state that the request did not already say."""
    hidden = [s for s in owner.secrets if s and s not in request_text]
    tokens = [str(t) for t in owner.tokens if not re.search(rf"\btoken: {t}\n", request_text)]
    found: list[str] = []
    for reply in outcome.replies:
        text = text_format.MessageToString(reply, as_utf8=True)
        found += [f"reply names {s!r}" for s in hidden if s in text]
    if outcome.error is None:
        return found
    message = outcome.error.details() or ""
    found += [f"message names {s!r}" for s in hidden if s in message]
    found += [f"message names token {t}" for t in tokens if re.search(rf"\btoken {t}\b", message)]
    status = rpc_status.from_call(outcome.error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            for name, value in info.metadata.items():
                found += [f"metadata {name} names {s!r}" for s in hidden if s in value]
                if "token" in name and value in tokens:
                    found.append(f"metadata {name} is the holder's token {value}")
        elif detail.Is(errors_pb2.ConflictDetail.DESCRIPTOR):
            conflict = errors_pb2.ConflictDetail()
            detail.Unpack(conflict)
            text = text_format.MessageToString(conflict, as_utf8=True)
            found += [f"conflict names {s!r}" for s in hidden if s in text]
            if conflict.key.startswith(SECRET_PREFIX) or (not conflict.key and SECRET_PREFIX in request_text):
                found += [
                    f"conflict on {conflict.key!r} carries {name}"
                    for name in _CONFLICT_STATE
                    if getattr(conflict, name)
                ]
    return found


@pytest.mark.parametrize("rpc", rpcs(), ids=[rpc.label for rpc in rpcs()])
def test_no_answer_reveals_state_outside_the_callers_read_rights(server: FuzzServer, rpc: Rpc) -> None:
    owner = replace(seed(server, f"{SECRET_PREFIX}{rpc.method.lower()}", identity="owner"), focused=True)
    with grpc.insecure_channel(server.process.address) as channel:

        @given(request=request_strategy(rpc, owner).map(Shown))
        @fuzz_settings(EXAMPLES)
        def run(request: Shown) -> None:
            request_text = text_format.MessageToString(request.value, as_utf8=True)
            outcome = call(channel, rpc, request.value, server.metadata("limited"))
            leaks = _leaks(rpc, request_text, outcome, owner)
            assert not leaks, f"{leaks}\nrequest: {request_text[:2000]}"

        run()
    server.alive()
