"""Decoding the rich status of a failed call, as any generated client would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lockservice.v1 import errors_pb2


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    conflict: errors_pb2.ConflictDetail | None


def decode(error: grpc.RpcError) -> Failure:
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error!r}"
    info = error_details_pb2.ErrorInfo()
    conflict: errors_pb2.ConflictDetail | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(errors_pb2.ConflictDetail.DESCRIPTOR):
            conflict = errors_pb2.ConflictDetail()
            detail.Unpack(conflict)
    return Failure(
        code=error.code(),
        message=status.message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        conflict=conflict,
    )


def fails(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Failure:
    """Calls `call`, which must fail, and returns the decoded failure."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return decode(caught.value)
