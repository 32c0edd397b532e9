import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    RESOURCE_EXISTS: _ClassVar[ErrorReason]
    VERSION_MISMATCH: _ClassVar[ErrorReason]
    VALUE_MISMATCH: _ClassVar[ErrorReason]
    TRANSACTION_CONFLICT: _ClassVar[ErrorReason]
    LOCK_HELD: _ClassVar[ErrorReason]
    LOCK_NOT_HELD: _ClassVar[ErrorReason]
    STALE_FENCE: _ClassVar[ErrorReason]
    RESOURCE_NOT_FOUND: _ClassVar[ErrorReason]
    VERSION_NOT_FOUND: _ClassVar[ErrorReason]
    LEASE_NOT_FOUND: _ClassVar[ErrorReason]
    LOCK_NOT_FOUND: _ClassVar[ErrorReason]
    INVALID_KEY: _ClassVar[ErrorReason]
    VALUE_TOO_LARGE: _ClassVar[ErrorReason]
    INVALID_TTL: _ClassVar[ErrorReason]
    REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    INVALID_REQUEST_ID: _ClassVar[ErrorReason]
    INVALID_PAGE_TOKEN: _ClassVar[ErrorReason]
    INVALID_ARGUMENT: _ClassVar[ErrorReason]
    REVISION_COMPACTED: _ClassVar[ErrorReason]
    UNAUTHENTICATED: _ClassVar[ErrorReason]
    PERMISSION_DENIED: _ClassVar[ErrorReason]
    LIMIT_EXCEEDED: _ClassVar[ErrorReason]
    STORE_UNAVAILABLE: _ClassVar[ErrorReason]
    SHUTTING_DOWN: _ClassVar[ErrorReason]
    NOT_IMPLEMENTED: _ClassVar[ErrorReason]
    INTERNAL_ERROR: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
RESOURCE_EXISTS: ErrorReason
VERSION_MISMATCH: ErrorReason
VALUE_MISMATCH: ErrorReason
TRANSACTION_CONFLICT: ErrorReason
LOCK_HELD: ErrorReason
LOCK_NOT_HELD: ErrorReason
STALE_FENCE: ErrorReason
RESOURCE_NOT_FOUND: ErrorReason
VERSION_NOT_FOUND: ErrorReason
LEASE_NOT_FOUND: ErrorReason
LOCK_NOT_FOUND: ErrorReason
INVALID_KEY: ErrorReason
VALUE_TOO_LARGE: ErrorReason
INVALID_TTL: ErrorReason
REQUEST_ID_REUSED: ErrorReason
INVALID_REQUEST_ID: ErrorReason
INVALID_PAGE_TOKEN: ErrorReason
INVALID_ARGUMENT: ErrorReason
REVISION_COMPACTED: ErrorReason
UNAUTHENTICATED: ErrorReason
PERMISSION_DENIED: ErrorReason
LIMIT_EXCEEDED: ErrorReason
STORE_UNAVAILABLE: ErrorReason
SHUTTING_DOWN: ErrorReason
NOT_IMPLEMENTED: ErrorReason
INTERNAL_ERROR: ErrorReason

class ConflictDetail(_message.Message):
    __slots__ = ("key", "exists", "current_version", "current_etag", "current_update_time", "current_mod_revision", "expected", "compare_index", "holder", "current_token", "expire_time", "lease_id", "revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ETAG_FIELD_NUMBER: _ClassVar[int]
    CURRENT_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    COMPARE_INDEX_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    key: str
    exists: bool
    current_version: int
    current_etag: str
    current_update_time: _timestamp_pb2.Timestamp
    current_mod_revision: int
    expected: str
    compare_index: int
    holder: str
    current_token: int
    expire_time: _timestamp_pb2.Timestamp
    lease_id: str
    revision: int
    def __init__(self, key: _Optional[str] = ..., exists: _Optional[bool] = ..., current_version: _Optional[int] = ..., current_etag: _Optional[str] = ..., current_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_mod_revision: _Optional[int] = ..., expected: _Optional[str] = ..., compare_index: _Optional[int] = ..., holder: _Optional[str] = ..., current_token: _Optional[int] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_id: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...
