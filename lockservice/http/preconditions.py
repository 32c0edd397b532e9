"""HTTP conditional requests (RFC 9110 section 13) as lockservice expectations.

Writes (PUT, DELETE) are evaluated by the service, atomically with the write:
`If-Match: "etag"` becomes `expected_etag`, `If-Match: *` "must exist", `If-None-Match: *` a
create. Reads evaluate here, against the representation just read: `If-None-Match` answers
304 Not Modified (weak comparison), a failed `If-Match` the same VERSION_MISMATCH a write gets.
One entity tag per `If-Match` on a write: the service compares one etag atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from starlette.datastructures import Headers

from lockservice.http.failures import Failure, RequestRejected, invalid_argument, precondition_required
from lockservice.model import CONFLICT_VALUE_MAX_BYTES, MAX_ETAG_CHARS
from lockservice.v1 import errors_pb2, resource_pb2

__all__ = [
    "CreateOnly",
    "MatchEtag",
    "MustExist",
    "Unconditional",
    "WriteCondition",
    "check_read_preconditions",
    "write_condition",
]

_ENTITY_TAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


@dataclass(frozen=True)
class Unconditional:
    """No precondition header: an upsert (PUT) or a plain delete."""


@dataclass(frozen=True)
class CreateOnly:
    """`If-None-Match: *`: write only if the key does not exist."""


@dataclass(frozen=True)
class MustExist:
    """`If-Match: *`: write only if the key exists, whatever its version."""


@dataclass(frozen=True)
class MatchEtag:
    """`If-Match: "etag"`: write only if this is still the current etag."""

    etag: str


WriteCondition = Unconditional | CreateOnly | MustExist | MatchEtag


def _entity_tags(header: str, value: str) -> list[tuple[bool, str]]:
    """`(weak, tag)` pairs of an entity-tag list; 400 on anything else."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None or match.end() == position:
            raise invalid_argument(header, f'{header} must be * or a list of entity tags like "12.3"')
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    if not tags:
        raise invalid_argument(header, f"{header} is empty")
    return tags


def write_condition(headers: Headers, method: str, *, required: bool) -> WriteCondition:
    """The condition of a PUT or DELETE; 428 when `required` and none is given."""
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if if_match is not None and if_none_match is not None:
        raise invalid_argument("If-None-Match", "send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if method != "PUT" or if_none_match.strip() != "*":
            raise invalid_argument(
                "If-None-Match", "only PUT takes If-None-Match, and only as * (create if absent)"
            )
        return CreateOnly()
    if if_match is not None:
        if if_match.strip() == "*":
            return MustExist()
        tags = _entity_tags("If-Match", if_match)
        if len(tags) != 1:
            raise invalid_argument("If-Match", "a write takes exactly one entity tag in If-Match")
        weak, tag = tags[0]
        if weak:
            raise invalid_argument("If-Match", "If-Match compares strongly: a weak tag (W/) never matches")
        if len(tag) > MAX_ETAG_CHARS:
            raise invalid_argument(
                "If-Match", f"If-Match must be an entity tag of at most {MAX_ETAG_CHARS} characters"
            )
        return MatchEtag(tag)
    if required:
        raise precondition_required(method)
    return Unconditional()


def check_read_preconditions(headers: Headers, resource: resource_pb2.Resource) -> bool:
    """Evaluates If-Match / If-None-Match against `resource`, just read.

    Returns True when the answer is 304 Not Modified; raises VERSION_MISMATCH (409, or 412 in
    strict mode) when If-Match names another etag.
    """
    if_match = headers.get("if-match")
    if (
        if_match is not None
        and if_match.strip() != "*"
        and not any(not weak and tag == resource.etag for weak, tag in _entity_tags("If-Match", if_match))
    ):
        raise _read_mismatch(resource, if_match.strip())
    if_none_match = headers.get("if-none-match")
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag == resource.etag for _, tag in _entity_tags("If-None-Match", if_none_match))


def _read_mismatch(resource: resource_pb2.Resource, if_match: str) -> RequestRejected:
    """The VERSION_MISMATCH a write with this If-Match would get, with the same current state."""
    conflict = errors_pb2.ConflictDetail(
        key=resource.key,
        exists=True,
        current_version=resource.version,
        current_etag=resource.etag,
        current_update_time=resource.update_time,
        current_mod_revision=resource.mod_revision,
        expected=f"etag {if_match}",
        revision=resource.mod_revision,
        current_content_type=resource.content_type,
    )
    if len(resource.value) <= CONFLICT_VALUE_MAX_BYTES:
        conflict.current_value = resource.value
    return RequestRejected(
        Failure(
            grpc.StatusCode.ABORTED,
            "VERSION_MISMATCH",
            f"{resource.key} is at version {resource.version} (etag {resource.etag}), "
            "which If-Match does not name",
            {"key": resource.key, "current_version": str(resource.version)},
            conflict,
        )
    )
