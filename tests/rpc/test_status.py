"""The status codec: the one error table is complete and agrees with the proto contract, and
what it encodes decodes back to the same reason, metadata and conflict."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from lockservice import errors
from lockservice.model import ConflictState, Resource
from lockservice.rpc.status import (
    DOMAIN,
    GRPC_CODE_BY_ERROR,
    STATUS_BUDGET_BYTES,
    DecodedStatus,
    conflict_detail,
    decode_status,
    internal_status,
    to_grpc_status,
)
from lockservice.v1 import errors_pb2


def _decode(status: grpc.Status) -> status_pb2.Status:
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status()
    decoded.ParseFromString(value)
    return decoded


def test_every_error_class_has_a_grpc_code() -> None:
    unmapped = [cls.__name__ for cls in errors.all_error_classes() if cls not in GRPC_CODE_BY_ERROR]
    assert unmapped == []


def test_every_reason_is_a_value_of_the_proto_enum() -> None:
    proto_reasons = set(errors_pb2.ErrorReason.keys())
    for cls in errors.all_error_classes():
        assert cls.reason in proto_reasons, cls.__name__


def test_reasons_are_unique() -> None:
    reasons = [cls.reason for cls in errors.all_error_classes()]
    assert len(reasons) == len(set(reasons))


def test_design_table_codes() -> None:
    expected = {
        errors.ResourceExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.VersionMismatch: grpc.StatusCode.ABORTED,
        errors.ValueMismatch: grpc.StatusCode.ABORTED,
        errors.TransactionConflict: grpc.StatusCode.ABORTED,
        errors.LockHeld: grpc.StatusCode.ABORTED,
        errors.LockNotHeld: grpc.StatusCode.ABORTED,
        errors.StaleFence: grpc.StatusCode.ABORTED,
        errors.ResourceNotFound: grpc.StatusCode.NOT_FOUND,
        errors.LeaseNotFound: grpc.StatusCode.NOT_FOUND,
        errors.LockNotFound: grpc.StatusCode.NOT_FOUND,
        errors.InvalidKey: grpc.StatusCode.INVALID_ARGUMENT,
        errors.ValueTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
        errors.InvalidTtl: grpc.StatusCode.INVALID_ARGUMENT,
        errors.RequestIdReused: grpc.StatusCode.INVALID_ARGUMENT,
        errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
        errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
        errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    }
    for cls, code in expected.items():
        assert GRPC_CODE_BY_ERROR[cls] == code, cls.__name__


_ORDER = Resource(
    key="orders/1",
    value=b"v",
    content_type="text/plain",
    version=7,
    create_revision=3,
    mod_revision=42,
    create_time_us=1_700_000_000_000_000,
    update_time_us=1_700_000_000_500_000,
)


def test_conflict_status_carries_error_info_and_current_state() -> None:
    current = _ORDER
    error = errors.VersionMismatch(
        "orders/1 is at version 7, not at the expected version 6",
        metadata={"key": "orders/1", "current_version": "7"},
        conflict=ConflictState(key="orders/1", current=current, expected="version 6", revision=50),
    )
    status = to_grpc_status(error)
    assert status.code == grpc.StatusCode.ABORTED
    assert status.details == "orders/1 is at version 7, not at the expected version 6"
    decoded = _decode(status)
    assert decoded.code == grpc.StatusCode.ABORTED.value[0]
    info = error_details_pb2.ErrorInfo()
    assert decoded.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "VERSION_MISMATCH",
        DOMAIN,
        {"key": "orders/1", "current_version": "7"},
    )
    detail = errors_pb2.ConflictDetail()
    assert decoded.details[1].Unpack(detail)
    assert detail.exists
    assert (detail.current_version, detail.current_etag, detail.current_mod_revision) == (7, '"3.7"', 42)
    assert detail.current_update_time.ToMicroseconds() == 1_700_000_000_500_000
    assert (detail.expected, detail.revision) == ("version 6", 50)
    assert (detail.current_value, detail.current_content_type) == (b"v", "text/plain")


@pytest.mark.parametrize("size,carried", [(4096, True), (4097, False)])
def test_a_conflict_carries_the_current_value_up_to_4_kib(size: int, carried: bool) -> None:
    current = dataclasses.replace(_ORDER, value=b"v" * size)
    error = errors.VersionMismatch(
        "orders/1 is at version 7",
        conflict=ConflictState(key="orders/1", current=current, expected="version 6"),
    )
    detail = errors_pb2.ConflictDetail()
    assert _decode(to_grpc_status(error)).details[1].Unpack(detail)
    assert detail.HasField("current_value") is carried
    assert detail.current_value == (current.value if carried else b"")
    assert (detail.current_version, detail.current_content_type) == (7, "text/plain")


def test_a_withheld_conflict_carries_only_the_echo_of_the_request() -> None:
    error = errors.TransactionConflict(
        "compares[1] failed: orders/1 is not version 6",
        metadata={"key": "orders/1", "compare_index": "1"},
        conflict=ConflictState(
            key="orders/1", current=None, expected="version 6", compare_index=1, withheld=True
        ),
    )
    detail = errors_pb2.ConflictDetail()
    assert _decode(to_grpc_status(error)).details[1].Unpack(detail)
    assert detail == errors_pb2.ConflictDetail(
        key="orders/1", expected="version 6", compare_index=1, state_withheld=True
    )


def test_internal_status_hides_the_cause() -> None:
    status = internal_status()
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.details == "internal error; the server logged the cause"
    info = error_details_pb2.ErrorInfo()
    assert _decode(status).details[0].Unpack(info)
    assert info.reason == "INTERNAL_ERROR"


def _trailer_cost(status: grpc.Status) -> int:
    """As gRPC counts it: the binary details plus the message percent-encoded (grpc-message)."""
    data = status.details.encode()
    encoded = sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in data)
    return len(_decode(status).SerializeToString()) + encoded


def test_every_echoed_string_is_clipped_to_fit_the_trailer_budget() -> None:
    """With a configured 4 KiB key, a multi-byte holder and a 4 KiB value, the status still fits:
    the value is left out for the client to re-read, and strings are clipped (to 1 KiB, then if
    that is not enough to 256 bytes, ending in an ellipsis)."""
    key = "k" * 4096
    holder = "\u20ac" * 256
    current = dataclasses.replace(_ORDER, key=key, value=b"v" * 4096, content_type="t/" + "x" * 253)
    error = errors.LockHeld(
        f"lock {key} is held by {holder} (token 9)",
        metadata={"name": key, "holder": holder},
        conflict=ConflictState(key=key, current=current, expected="e" * 5000, revision=3, holder=holder),
    )
    status = to_grpc_status(error)
    assert _trailer_cost(status) <= STATUS_BUDGET_BYTES
    assert status.details.startswith(f"lock {key[:100]}") and status.details.endswith("\u2026")
    decoded = _decode(status)
    assert decoded.message == status.details
    info = error_details_pb2.ErrorInfo()
    assert decoded.details[0].Unpack(info)
    clipped_holder = "\u20ac" * 84 + "\u2026"
    assert (info.metadata["name"], info.metadata["holder"]) == (key[:253] + "\u2026", clipped_holder)
    detail = errors_pb2.ConflictDetail()
    assert decoded.details[1].Unpack(detail)
    assert (detail.key, detail.holder) == (key[:253] + "\u2026", clipped_holder)
    assert detail.expected == "e" * 253 + "\u2026"
    assert not detail.HasField("current_value")
    assert (detail.current_version, detail.current_etag) == (7, '"3.7"')


def test_a_multibyte_message_is_clipped_by_what_it_costs_percent_encoded() -> None:
    message = "\u20ac" * 1000  # 3 bytes each, 9 once percent-encoded
    status = to_grpc_status(errors.InvalidArgument(message, metadata={"field": "x"}))
    assert status.details == "\u20ac" * 127 + "\u2026"
    assert _trailer_cost(status) <= 2048


def _failed_call(status: grpc.Status) -> grpc.aio.AioRpcError:
    """The error a client's call raises when the server answered `status`."""
    return grpc.aio.AioRpcError(
        status.code, None, grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


def test_what_is_encoded_decodes_back() -> None:
    conflict = ConflictState(key="orders/1", current=_ORDER, expected="version 6", revision=50)
    error = errors.VersionMismatch(
        "orders/1 is at version 7", conflict=conflict, metadata={"key": "orders/1"}
    )
    decoded = decode_status(_failed_call(to_grpc_status(error)))
    assert decoded == DecodedStatus(
        grpc.StatusCode.ABORTED,
        "orders/1 is at version 7",
        "VERSION_MISMATCH",
        DOMAIN,
        {"key": "orders/1"},
        conflict_detail(conflict),
    )
    assert decoded.ours


def test_a_call_without_a_rich_status_decodes_as_not_ours() -> None:
    bare = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, grpc.aio.Metadata(), "connection refused")
    assert decode_status(bare) == DecodedStatus(grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert not decode_status(bare).ours
