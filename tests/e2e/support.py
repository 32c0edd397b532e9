"""Helpers shared by the end-to-end modules: typed server factory, failure assertions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import grpc

from lockservice.model import CONFLICT_VALUE_MAX_BYTES
from lockservice.v1 import errors_pb2, resource_pb2, resource_pb2_grpc
from tests.conftest import ServerProcess
from tests.grpc_errors import Failure, fails

DOMAIN = "lockservice"


class ServerFactory(Protocol):
    """The `server_factory` fixture: a new, not yet started server with its own database."""

    def __call__(
        self, extra_args: list[str] | None = None, name: str = "server", store_url: str = ""
    ) -> ServerProcess: ...


def expect_failure(
    call: Callable[..., Any], request: Any, code: grpc.StatusCode, reason: str, **kwargs: Any
) -> Failure:
    """Calls `call(request)`, which must fail with `code` and ErrorInfo `reason` in our domain."""
    failure = fails(call, request, timeout=kwargs.pop("timeout", 10.0), **kwargs)
    assert failure.code == code, f"expected {code}, got {failure.code}: {failure.message}"
    assert failure.reason == reason, f"expected {reason}, got {failure.reason}: {failure.message}"
    assert failure.domain == DOMAIN
    return failure


def conflict_of(failure: Failure) -> errors_pb2.ConflictDetail:
    """The ConflictDetail a failure must carry."""
    assert failure.conflict is not None, f"no ConflictDetail on {failure.reason}: {failure.message}"
    return failure.conflict


def assert_conflict_is(
    detail: errors_pb2.ConflictDetail, key: str, current: resource_pb2.Resource | None, expected: str
) -> None:
    """The detail describes `current` (None: the key is missing) and what the request expected."""
    assert detail.key == key
    assert detail.expected == expected
    if current is None:
        assert not detail.exists
        assert detail.current_version == 0
        assert detail.current_etag == ""
        assert detail.current_mod_revision == 0
        assert not detail.HasField("current_update_time")
        assert not detail.HasField("current_value")
        assert detail.current_content_type == ""
    else:
        assert detail.exists
        assert detail.current_version == current.version
        assert detail.current_etag == current.etag
        assert detail.current_mod_revision == current.mod_revision
        assert detail.current_update_time == current.update_time
        assert detail.current_content_type == current.content_type
        assert detail.HasField("current_value") == (len(current.value) <= CONFLICT_VALUE_MAX_BYTES)
        if detail.HasField("current_value"):
            assert detail.current_value == current.value
    assert detail.revision >= (current.mod_revision if current is not None else 0)


def create(
    resources: resource_pb2_grpc.ResourceServiceStub,
    key: str,
    value: bytes,
    content_type: str = "",
    request_id: str = "",
) -> resource_pb2.Resource:
    reply: resource_pb2.Resource = resources.CreateResource(
        resource_pb2.CreateResourceRequest(
            key=key, value=value, content_type=content_type, request_id=request_id
        ),
        timeout=10.0,
    )
    return reply


def get(
    resources: resource_pb2_grpc.ResourceServiceStub, key: str, version: int = 0
) -> resource_pb2.Resource:
    reply: resource_pb2.Resource = resources.GetResource(
        resource_pb2.GetResourceRequest(key=key, version=version), timeout=10.0
    )
    return reply


def update(
    resources: resource_pb2_grpc.ResourceServiceStub, key: str, value: bytes, **fields: Any
) -> resource_pb2.Resource:
    reply: resource_pb2.Resource = resources.UpdateResource(
        resource_pb2.UpdateResourceRequest(key=key, value=value, **fields), timeout=10.0
    )
    return reply


def assert_missing(resources: resource_pb2_grpc.ResourceServiceStub, key: str) -> None:
    """GetResource answers NOT_FOUND / RESOURCE_NOT_FOUND for `key`."""
    failure = expect_failure(
        resources.GetResource,
        resource_pb2.GetResourceRequest(key=key),
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
    )
    assert failure.metadata.get("key") == key
