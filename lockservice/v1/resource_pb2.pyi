import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lockservice.v1 import lock_pb2 as _lock_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResourceView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_VIEW_UNSPECIFIED: _ClassVar[ResourceView]
    RESOURCE_VIEW_BASIC: _ClassVar[ResourceView]
    RESOURCE_VIEW_FULL: _ClassVar[ResourceView]
RESOURCE_VIEW_UNSPECIFIED: ResourceView
RESOURCE_VIEW_BASIC: ResourceView
RESOURCE_VIEW_FULL: ResourceView

class Resource(_message.Message):
    __slots__ = ("key", "value", "content_type", "version", "etag", "create_revision", "mod_revision", "create_time", "update_time", "lease_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    content_type: str
    version: int
    etag: str
    create_revision: int
    mod_revision: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    lease_id: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., create_revision: _Optional[int] = ..., mod_revision: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_id: _Optional[str] = ...) -> None: ...

class CreateResourceRequest(_message.Message):
    __slots__ = ("key", "value", "content_type", "lease_id", "request_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    content_type: str
    lease_id: str
    request_id: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., lease_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetResourceRequest(_message.Message):
    __slots__ = ("key", "version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    version: int
    def __init__(self, key: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateResourceRequest(_message.Message):
    __slots__ = ("key", "value", "content_type", "expected_version", "expected_etag", "allow_missing", "fence", "lease_id", "request_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ETAG_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    content_type: str
    expected_version: int
    expected_etag: str
    allow_missing: bool
    fence: _lock_pb2.Fence
    lease_id: str
    request_id: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., expected_version: _Optional[int] = ..., expected_etag: _Optional[str] = ..., allow_missing: _Optional[bool] = ..., fence: _Optional[_Union[_lock_pb2.Fence, _Mapping]] = ..., lease_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteResourceRequest(_message.Message):
    __slots__ = ("key", "expected_version", "expected_etag", "allow_missing", "fence", "request_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ETAG_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    expected_version: int
    expected_etag: str
    allow_missing: bool
    fence: _lock_pb2.Fence
    request_id: str
    def __init__(self, key: _Optional[str] = ..., expected_version: _Optional[int] = ..., expected_etag: _Optional[str] = ..., allow_missing: _Optional[bool] = ..., fence: _Optional[_Union[_lock_pb2.Fence, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteResourceResponse(_message.Message):
    __slots__ = ("resource", "revision")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    revision: int
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListResourcesRequest(_message.Message):
    __slots__ = ("prefix", "page_size", "page_token", "view")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    page_size: int
    page_token: str
    view: ResourceView
    def __init__(self, prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., view: _Optional[_Union[ResourceView, str]] = ...) -> None: ...

class ListResourcesResponse(_message.Message):
    __slots__ = ("resources", "next_page_token", "revision")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    next_page_token: str
    revision: int
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class ListResourceVersionsRequest(_message.Message):
    __slots__ = ("key", "page_size", "page_token", "view")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    key: str
    page_size: int
    page_token: str
    view: ResourceView
    def __init__(self, key: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., view: _Optional[_Union[ResourceView, str]] = ...) -> None: ...

class ListResourceVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Resource]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CompareAndSetRequest(_message.Message):
    __slots__ = ("key", "expected_version", "expected_etag", "expected_value", "expect_absent", "value", "content_type", "fence", "lease_id", "request_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ETAG_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ABSENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    expected_version: int
    expected_etag: str
    expected_value: bytes
    expect_absent: bool
    value: bytes
    content_type: str
    fence: _lock_pb2.Fence
    lease_id: str
    request_id: str
    def __init__(self, key: _Optional[str] = ..., expected_version: _Optional[int] = ..., expected_etag: _Optional[str] = ..., expected_value: _Optional[bytes] = ..., expect_absent: _Optional[bool] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., fence: _Optional[_Union[_lock_pb2.Fence, _Mapping]] = ..., lease_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class Compare(_message.Message):
    __slots__ = ("key", "version", "etag", "value", "absent")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    key: str
    version: int
    etag: str
    value: bytes
    absent: bool
    def __init__(self, key: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., value: _Optional[bytes] = ..., absent: _Optional[bool] = ...) -> None: ...

class PutOperation(_message.Message):
    __slots__ = ("key", "value", "content_type", "lease_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    content_type: str
    lease_id: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., content_type: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class DeleteOperation(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("put", "delete")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    put: PutOperation
    delete: DeleteOperation
    def __init__(self, put: _Optional[_Union[PutOperation, _Mapping]] = ..., delete: _Optional[_Union[DeleteOperation, _Mapping]] = ...) -> None: ...

class TransactRequest(_message.Message):
    __slots__ = ("compares", "operations", "fence", "request_id")
    COMPARES_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    compares: _containers.RepeatedCompositeFieldContainer[Compare]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    fence: _lock_pb2.Fence
    request_id: str
    def __init__(self, compares: _Optional[_Iterable[_Union[Compare, _Mapping]]] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., fence: _Optional[_Union[_lock_pb2.Fence, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class OperationResult(_message.Message):
    __slots__ = ("resource", "deleted")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    deleted: bool
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class TransactResponse(_message.Message):
    __slots__ = ("revision", "results")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    results: _containers.RepeatedCompositeFieldContainer[OperationResult]
    def __init__(self, revision: _Optional[int] = ..., results: _Optional[_Iterable[_Union[OperationResult, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("key", "prefix", "start_revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    key: str
    prefix: bool
    start_revision: int
    def __init__(self, key: _Optional[str] = ..., prefix: _Optional[bool] = ..., start_revision: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "resource", "revision")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[WatchEvent.EventType]
        PUT: _ClassVar[WatchEvent.EventType]
        DELETE: _ClassVar[WatchEvent.EventType]
        EXPIRE: _ClassVar[WatchEvent.EventType]
    EVENT_TYPE_UNSPECIFIED: WatchEvent.EventType
    PUT: WatchEvent.EventType
    DELETE: WatchEvent.EventType
    EXPIRE: WatchEvent.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: WatchEvent.EventType
    resource: Resource
    revision: int
    def __init__(self, type: _Optional[_Union[WatchEvent.EventType, str]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("events", "revision")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    revision: int
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...
