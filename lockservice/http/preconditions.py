"""HTTP conditional requests (RFC 9110 sections 13.1 and 13.2) as lockservice expectations.

The four headers are evaluated in the order of section 13.2.2: If-Match (`*` or a list of
entity tags, strong comparison: a weak tag never matches); If-Unmodified-Since, only without
If-Match; If-None-Match (`*` or a list, weak comparison); If-Modified-Since, only on GET/HEAD
and only without If-None-Match. Dates compare with `Last-Modified` as sent, to the second; an
invalid date is ignored, a malformed entity-tag list is 400 naming its header.

Writes (PUT, DELETE). What the service can compare atomically goes to it as is: `If-Match:
"etag"` becomes `expected_etag`, `If-Match: *` "must exist", `If-None-Match: *` a create.
Anything else (a list of tags, a weak tag, a date, If-None-Match with tags) is `ReadFirst`:
the route reads the current state, the conditions are evaluated on it, and the write then
expects exactly the etag read (or, for a PUT to a missing key, its absence), so a write that
lands in between makes this one fail VERSION_MISMATCH instead of being overwritten.

A false condition is the conflict the service itself reports, with the current state:
VERSION_MISMATCH for If-Match and If-Unmodified-Since, RESOURCE_EXISTS for If-None-Match on a
write (409 by default, 412 in strict mode; see `problems.py`). On a read, a false If-None-Match
or If-Modified-Since is 304 Not Modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from starlette.datastructures import Headers

from lockservice.http.dates import last_modified, parse_http_date
from lockservice.http.failures import Failure, RequestRejected, invalid_argument, precondition_required
from lockservice.model import MAX_ETAG_CHARS
from lockservice.rpc.status import set_current_state
from lockservice.v1 import errors_pb2, resource_pb2

__all__ = [
    "CreateOnly",
    "MatchEtag",
    "MustExist",
    "ReadConditions",
    "ReadFirst",
    "Unconditional",
    "WriteCondition",
    "read_conditions",
    "write_condition",
]

_ENTITY_TAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class _EntityTag:
    weak: bool
    opaque: str  # with its quotes, as in an ETag header


# `*`, or the tags of a list.
_TagCondition = str | tuple[_EntityTag, ...]
_ANY = "*"


@dataclass(frozen=True)
class _Conditions:
    """The conditional headers of one request, parsed; a date is None when absent or invalid."""

    if_match: _TagCondition | None
    if_match_text: str
    if_unmodified_since: int | None
    if_unmodified_since_text: str
    if_none_match: _TagCondition | None
    if_none_match_text: str
    if_modified_since: int | None


def _entity_tags(header: str, value: str) -> _TagCondition:
    """`*` or the entity tags of a list; 400 naming `header` on anything else."""
    if value.strip() == _ANY:
        return _ANY
    tags: list[_EntityTag] = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None or match.end() == position:
            raise invalid_argument(header, f'{header} must be * or a list of entity tags like "12.3"')
        if len(match.group(2)) > MAX_ETAG_CHARS:
            raise invalid_argument(
                header, f"{header} takes entity tags of at most {MAX_ETAG_CHARS} characters"
            )
        tags.append(_EntityTag(match.group(1) is not None, match.group(2)))
        position = match.end()
    if not tags:
        raise invalid_argument(header, f"{header} is empty")
    return tuple(tags)


def _parse(headers: Headers) -> _Conditions:
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if_unmodified_since = headers.get("if-unmodified-since")
    if_modified_since = headers.get("if-modified-since")
    return _Conditions(
        if_match=None if if_match is None else _entity_tags("If-Match", if_match),
        if_match_text=(if_match or "").strip(),
        if_unmodified_since=None if if_unmodified_since is None else parse_http_date(if_unmodified_since),
        if_unmodified_since_text=(if_unmodified_since or "").strip(),
        if_none_match=None if if_none_match is None else _entity_tags("If-None-Match", if_none_match),
        if_none_match_text=(if_none_match or "").strip(),
        if_modified_since=None if if_modified_since is None else parse_http_date(if_modified_since),
    )


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


@dataclass(frozen=True)
class ReadFirst:
    """Conditions the service cannot compare in one step: read the key, then `pin` the write
    to the state read. `may_create`: a missing key is a state to pin (a PUT without If-Match);
    otherwise the read's RESOURCE_NOT_FOUND is the answer."""

    _conditions: _Conditions
    method: str

    @property
    def may_create(self) -> bool:
        return self.method == "PUT" and self._conditions.if_match is None

    def pin(self, current: resource_pb2.Resource | None, now: float) -> CreateOnly | MatchEtag:
        """The write's condition once the headers hold for `current` (None: the key is missing,
        only when `may_create`); raises the conflict of the first false header."""
        if current is None:
            return CreateOnly()
        _evaluate(self._conditions, current, self.method, now)
        return MatchEtag(current.etag)


WriteCondition = Unconditional | CreateOnly | MustExist | MatchEtag | ReadFirst


def write_condition(headers: Headers, method: str, *, required: bool) -> WriteCondition:
    """The condition of a PUT or DELETE; 400 on a malformed entity tag, 428 when `required`
    and the request has no condition a write evaluates (If-Modified-Since is for reads)."""
    conditions = _parse(headers)
    if_match, if_none_match = conditions.if_match, conditions.if_none_match
    if if_match is None and if_none_match is None and conditions.if_unmodified_since is None:
        if required:
            raise precondition_required(method)
        return Unconditional()  # an invalid If-Unmodified-Since is ignored
    if if_none_match is None and if_match == _ANY:
        return MustExist()
    if if_none_match is None and isinstance(if_match, tuple) and len(if_match) == 1 and not if_match[0].weak:
        return MatchEtag(if_match[0].opaque)
    if if_match is None and if_none_match == _ANY and method == "PUT":
        return CreateOnly()  # if the key exists, If-None-Match fails whatever the date says
    return ReadFirst(conditions, method)


@dataclass(frozen=True)
class ReadConditions:
    """The conditional headers of a GET/HEAD, parsed before the read (so a malformed one is
    400 whether or not the key exists), evaluated on the representation read."""

    _conditions: _Conditions

    def not_modified(self, resource: resource_pb2.Resource, now: float) -> bool:
        """True when the answer is 304 Not Modified; raises VERSION_MISMATCH (409, or 412 in
        strict mode) when If-Match or If-Unmodified-Since is false. `now` is the adapter's clock,
        which bounds `Last-Modified` and makes a future If-Modified-Since invalid."""
        return _evaluate(self._conditions, resource, "GET", now)


def read_conditions(headers: Headers) -> ReadConditions:
    """The conditions of a GET/HEAD; 400 naming the header on a malformed entity tag."""
    return ReadConditions(_parse(headers))


def _matches(condition: _TagCondition, etag: str, *, weak: bool) -> bool:
    """Whether `condition` holds for an existing representation with the (strong) `etag`."""
    if isinstance(condition, str):  # `*`
        return True
    return any(tag.opaque == etag and (weak or not tag.weak) for tag in condition)


def _evaluate(conditions: _Conditions, current: resource_pb2.Resource, method: str, now: float) -> bool:
    """RFC 9110 section 13.2.2 on an existing `current`: True for 304, False to proceed."""
    modified = last_modified(current, now)
    if conditions.if_match is not None:
        if not _matches(conditions.if_match, current.etag, weak=False):
            raise _conflict(current, "VERSION_MISMATCH", f"etag {conditions.if_match_text}", "If-Match")
    elif (
        conditions.if_unmodified_since is not None
        and modified is not None
        and modified > conditions.if_unmodified_since
    ):
        raise _conflict(
            current,
            "VERSION_MISMATCH",
            f"unmodified since {conditions.if_unmodified_since_text}",
            "If-Unmodified-Since",
        )
    if conditions.if_none_match is not None:
        if not _matches(conditions.if_none_match, current.etag, weak=True):
            return False
        if method in _READ_METHODS:
            return True
        expected = (
            "absent" if conditions.if_none_match == _ANY else f"none of {conditions.if_none_match_text}"
        )
        raise _conflict(current, "RESOURCE_EXISTS", expected, "If-None-Match")
    since = conditions.if_modified_since
    return (
        method in _READ_METHODS
        and since is not None
        and since <= now  # a date later than the server's clock is invalid (section 13.1.3)
        and modified is not None
        and modified <= since
    )


def _conflict(current: resource_pb2.Resource, reason: str, expected: str, header: str) -> RequestRejected:
    """The conflict a write with this false condition gets, with the same current state."""
    conflict = errors_pb2.ConflictDetail(
        key=current.key, exists=True, expected=expected, revision=current.mod_revision
    )
    set_current_state(
        conflict,
        version=current.version,
        etag=current.etag,
        mod_revision=current.mod_revision,
        update_time=current.update_time,
        content_type=current.content_type,
        value=current.value,
    )
    code = grpc.StatusCode.ALREADY_EXISTS if reason == "RESOURCE_EXISTS" else grpc.StatusCode.ABORTED
    return RequestRejected(
        Failure(
            code,
            reason,
            f"{current.key} is at version {current.version} (etag {current.etag}), "
            f"for which {header} is false",
            {"key": current.key, "current_version": str(current.version)},
            conflict,
        )
    )
