"""Hypothesis strategies for the request of every lockservice RPC, built from the protobuf
descriptors (so a field or method added to the protos is fuzzed without a change here).

Values are typed edges, not just noise: empty, huge, non-ASCII and near-surrogate strings, keys
that are valid (so calls reach the rules behind validation) and keys that are not, int64 and
int32 extremes, durations out of protobuf's range, unset and set oneofs, repeated fields from
empty to far past the service's limits (within gRPC's message limit), unknown enum values.
Names seen on the server (keys, lease ids, lock names, etags, tokens) are mixed in by `Seeds`.
Raw bytes: random, truncated or bit-flipped serializations, and string fields holding invalid
UTF-8 (what a lone surrogate becomes on the wire).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import duration_pb2, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from lockservice.v1 import lease_pb2, lock_pb2, resource_pb2

__all__ = ["SERVICES", "Rpc", "Seeds", "Shown", "raw_requests", "request_strategy", "rpcs"]

SERVICES: list[ServiceDescriptor] = [
    resource_pb2.DESCRIPTOR.services_by_name["ResourceService"],
    lease_pb2.DESCRIPTOR.services_by_name["LeaseService"],
    lock_pb2.DESCRIPTOR.services_by_name["LockService"],
]

_INT64_EDGES = [0, 1, -1, 2, 7, 2**31 - 1, -(2**31), 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 2**63 - 2]
_INT32_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 1000, 1001]
_KEY_CHARS = string.ascii_letters + string.digits + "-._~/:@+=,!"
_ODD_STRINGS = [
    "",
    " ",
    "/",
    "//",
    ".",
    "..",
    "a/../b",
    "a//b",
    "/a",
    "a/",
    "\x00",
    "a\x00b",
    "\t\n",
    "\u00e9",
    "e\u0301",
    "\ufeff",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U0010ffff",
    "\U0001d11e",
    "\u202e",
    "%2F",
    "%00",
    "*",
    "\\",
    "'; DROP TABLE resources; --",
    "\"'",
    "null",
    "{}",
]
# Huge strings: past the key limit, the request-id limit, the etag limit and gRPC's trailer
# budget (an echoed string near 8 KiB).
_HUGE_LENGTHS = [129, 257, 513, 600, 4097, 8000]


def _huge_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda c, n: (c * n)[:n],
        st.sampled_from(["a", "\u00e9", "\U0001d11e", "/", "0"]),
        st.sampled_from(_HUGE_LENGTHS),
    )


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_ODD_STRINGS),
        st.text(max_size=24),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
        _huge_text(),
    )


def _valid_key() -> st.SearchStrategy[str]:
    segment = st.text(alphabet=_KEY_CHARS.replace("/", ""), min_size=1, max_size=8).filter(
        lambda s: s not in (".", "..")
    )
    return st.lists(segment, min_size=1, max_size=4).map("/".join)


@dataclass
class Seeds:
    """Values that exist on the server under test, mixed into the generated ones."""

    keys: list[str] = field(default_factory=lambda: ["fuzz/a"])
    lease_ids: list[str] = field(default_factory=lambda: ["0" * 32])
    lock_names: list[str] = field(default_factory=lambda: ["fuzz/lock"])
    etags: list[str] = field(default_factory=lambda: ['"1.1"'])
    tokens: list[int] = field(default_factory=lambda: [1])
    page_tokens: list[str] = field(default_factory=lambda: [""])
    request_ids: list[str] = field(default_factory=lambda: [""])
    # What only the seeding identity may see: values, holder names, lease ids, request ids.
    secrets: list[str] = field(default_factory=list)
    # Focused: names of keys, locks and leases are always the seeded ones, so every call is
    # about the seeded state (the generated rest of the request still varies).
    focused: bool = False

    def always_set(self, name: str) -> bool:
        return self.focused and name in ("key", "name", "lock_name", "prefix")

    def strings(self, name: str) -> st.SearchStrategy[str]:
        """A strategy for the string field `name`, by what the name says it holds."""
        if self.focused and name in ("key", "prefix", "name", "lock_name"):
            return st.sampled_from([*self.keys, *self.lock_names])
        if self.focused and name in ("lease_id", "request_id"):
            return st.sampled_from([*self.lease_ids, *self.request_ids])
        if name in ("key", "prefix"):
            return st.one_of(st.sampled_from(self.keys), _valid_key(), _text())
        if name in ("name", "lock_name"):
            return st.one_of(st.sampled_from(self.lock_names), _valid_key(), _text())
        if name == "lease_id":
            hex_id = st.sampled_from([32, 48, 31, 33, 47]).flatmap(
                lambda n: st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)
            )
            return st.one_of(st.sampled_from(self.lease_ids), hex_id, _text())
        if name in ("etag", "expected_etag"):
            return st.one_of(st.sampled_from(self.etags), _text())
        if name == "page_token":
            return st.one_of(
                st.sampled_from(self.page_tokens), st.text(alphabet=_KEY_CHARS, max_size=40), _text()
            )
        if name == "request_id":
            return st.one_of(st.sampled_from(self.request_ids), st.uuids().map(str), _text())
        if name == "content_type":
            return st.one_of(st.sampled_from(["", "text/plain", "application/json; charset=utf-8"]), _text())
        return _text()

    def integers(self, name: str, bits: int) -> st.SearchStrategy[int]:
        edges = _INT64_EDGES if bits == 64 else _INT32_EDGES
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        typical: st.SearchStrategy[int] = st.integers(-3, 3600)
        if name in ("token", "current_token"):
            typical = st.one_of(st.sampled_from(self.tokens), st.integers(0, 50))
        return st.one_of(st.sampled_from(edges), typical, st.integers(low, high))


_SECONDS_EDGES = [0, 1, -1, 5, 300, 301, 3600, 3601, 315_576_000_000, 315_576_000_001, 2**63 - 1, -(2**63)]
_NANOS_EDGES = [0, 1, -1, 999_999_999, 1_000_000_000, -999_999_999, 2**31 - 1, -(2**31)]


def _duration() -> st.SearchStrategy[Message]:
    small = st.builds(
        lambda ms: duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000),
        st.integers(0, 60),
    )
    edges = st.builds(
        lambda s, n: duration_pb2.Duration(seconds=s, nanos=n),
        st.sampled_from(_SECONDS_EDGES),
        st.sampled_from(_NANOS_EDGES),
    )
    return st.one_of(small, edges)


_SCALARS: dict[int, Callable[[Seeds, str], st.SearchStrategy[Any]]] = {
    FieldDescriptor.TYPE_STRING: lambda seeds, name: seeds.strings(name),
    FieldDescriptor.TYPE_BYTES: lambda seeds, name: st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"", b"\x00", b"\xff" * 4097, b"v" * (1024 * 1024), b"v" * (1024 * 1024 + 1)]),
    ),
    FieldDescriptor.TYPE_BOOL: lambda seeds, name: st.booleans(),
    FieldDescriptor.TYPE_INT64: lambda seeds, name: seeds.integers(name, 64),
    FieldDescriptor.TYPE_SINT64: lambda seeds, name: seeds.integers(name, 64),
    FieldDescriptor.TYPE_INT32: lambda seeds, name: seeds.integers(name, 32),
    FieldDescriptor.TYPE_SINT32: lambda seeds, name: seeds.integers(name, 32),
    FieldDescriptor.TYPE_UINT64: lambda seeds, name: st.sampled_from([0, 1, 2**63, 2**64 - 1]),
    FieldDescriptor.TYPE_UINT32: lambda seeds, name: st.sampled_from([0, 1, 2**31, 2**32 - 1]),
    FieldDescriptor.TYPE_DOUBLE: lambda seeds, name: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: lambda seeds, name: st.floats(width=32, allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_ENUM: lambda seeds, name: st.one_of(
        st.integers(-2, 8), st.sampled_from([2**31 - 1, -(2**31)])
    ),
}
# Sizes of a repeated field: none, a few, the transaction limit and one past it, and far past
# (kept under gRPC's message limit by the small items it is drawn with).
_REPEATS = [0, 1, 2, 3, 128, 129, 3000]


def _field_value(seeds: Seeds, fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Duration":
            return _duration()
        return _message(seeds, fd.message_type, depth + 1)
    return _SCALARS[fd.type](seeds, fd.name)


def _small(item: Any) -> bool:
    size = item.ByteSize() if isinstance(item, Message) else len(item) if isinstance(item, str | bytes) else 8
    return bool(size <= 256)


def _repeated(seeds: Seeds, fd: FieldDescriptor, depth: int) -> st.SearchStrategy[list[Any]]:
    few = st.lists(_field_value(seeds, fd, depth), max_size=3)
    # Many copies of one small item: far past the service's limits, well within gRPC's.
    many = st.tuples(_field_value(seeds, fd, depth), st.sampled_from(_REPEATS)).map(
        lambda pair: [pair[0]] * (pair[1] if _small(pair[0]) else min(pair[1], 2))
    )
    return st.one_of(few, many)


def _message(seeds: Seeds, descriptor: Any, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    oneofs = [o for o in descriptor.oneofs if not o.name.startswith("_") or len(o.fields) > 1]
    in_oneof = {fd.name for o in oneofs for fd in o.fields}
    plain = {
        fd.name: (_repeated(seeds, fd, depth) if _is_repeated(fd) else _field_value(seeds, fd, depth))
        if seeds.always_set(fd.name)
        else st.one_of(
            st.none(), _repeated(seeds, fd, depth) if _is_repeated(fd) else _field_value(seeds, fd, depth)
        )
        for fd in descriptor.fields
        if fd.name not in in_oneof
    }
    # Each oneof: unset, or one member set (to its own typed value).
    chosen = {
        o.name: st.one_of(
            st.none(),
            st.sampled_from(list(o.fields)).flatmap(
                lambda fd: st.tuples(st.just(fd), _field_value(seeds, fd, depth))
            ),
        )
        for o in oneofs
    }

    def build(values: dict[str, Any], members: dict[str, Any]) -> Message:
        message = cls()
        fields = descriptor.fields_by_name
        for name, value in values.items():
            if value is not None:
                _set(message, fields[name], value)
        for member in members.values():
            if member is not None:
                _set(message, member[0], member[1])
        return message

    return st.builds(build, st.fixed_dictionaries(plain), st.fixed_dictionaries(chosen))


def _is_repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def _set(message: Message, fd: FieldDescriptor, value: Any) -> None:
    if _is_repeated(fd):
        container = getattr(message, fd.name)
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
    elif fd.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, fd.name).CopyFrom(value)
    else:
        setattr(message, fd.name, value)


@dataclass(frozen=True)
class Rpc:
    """One method of the API and what calling it takes."""

    service: str
    method: str
    path: str
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def label(self) -> str:
        return f"{self.service}.{self.method}"


def _rpc(service: ServiceDescriptor, method: MethodDescriptor) -> Rpc:
    return Rpc(
        service=service.name,
        method=method.name,
        path=f"/{service.full_name}/{method.name}",
        request=message_factory.GetMessageClass(method.input_type),
        response=message_factory.GetMessageClass(method.output_type),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
    )


def rpcs() -> list[Rpc]:
    """Every RPC of ResourceService, LeaseService and LockService."""
    return [_rpc(service, method) for service in SERVICES for method in service.methods]


class Shown:
    """A generated value whose repr (in a failure report) is cut short: some are megabytes."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        text = repr(self.value)
        return text if len(text) <= 2000 else f"{text[:2000]}... ({len(text)} characters)"


# gRPC refuses a larger request itself, before the service sees it (the server's limit is twice
# the largest value plus 64 KiB).
_MAX_REQUEST_BYTES = 2 * 1024 * 1024


def request_strategy(rpc: Rpc, seeds: Seeds) -> st.SearchStrategy[Message]:
    return _message(seeds, rpc.request.DESCRIPTOR).filter(lambda m: m.ByteSize() <= _MAX_REQUEST_BYTES)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _invalid_utf8_field(rpc: Rpc) -> st.SearchStrategy[bytes]:
    """A string field holding bytes that are not UTF-8 (a lone surrogate, an overlong form)."""
    strings = [fd.number for fd in rpc.request.DESCRIPTOR.fields if fd.type == FieldDescriptor.TYPE_STRING]
    bad = [b"\xed\xa0\x80", b"a\xed\xbf\xbfz", b"\xc0\xaf", b"\xff", b"\x80abc", b"k\xf4\x90\x80\x80"]
    if not strings:
        return st.just(b"")
    return st.builds(
        lambda number, payload: _varint(number << 3 | 2) + _varint(len(payload)) + payload,
        st.sampled_from(strings),
        st.sampled_from(bad),
    )


def raw_requests(rpc: Rpc, seeds: Seeds) -> st.SearchStrategy[bytes]:
    """Bytes sent as the request, bypassing the client's serializer."""
    valid = request_strategy(rpc, seeds).map(lambda m: m.SerializeToString())
    truncated = st.tuples(valid, st.integers(1, 8)).map(
        lambda pair: pair[0][: -pair[1]] if len(pair[0]) > pair[1] else b"\x0a"
    )
    flipped = st.tuples(valid, st.integers(0, 10_000), st.integers(1, 255)).map(
        lambda t: (
            t[0][: t[1] % max(len(t[0]), 1)]
            + bytes([(t[0][t[1] % len(t[0])] ^ t[2]) if t[0] else t[2]])
            + t[0][t[1] % max(len(t[0]), 1) + 1 :]
        )
    )
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"\x0a\xff\xff\xff\xff\x0f",
                b"\x08" + b"\xff" * 10 + b"\x01",
                b"\x0f",
                b"\x12\x05ab",
                b"\xfa\xff\xff\xff\x0f\x00",
            ]
        ),
        truncated,
        flipped,
        _invalid_utf8_field(rpc),
    )
