"""RFC 9110 conditional requests: If-Match, If-Unmodified-Since, If-None-Match and
If-Modified-Since, evaluated in the order of section 13.2.2, as write conditions and on reads."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.datastructures import Headers

from lockservice.http.failures import RequestRejected
from lockservice.http.preconditions import (
    CreateOnly,
    MatchEtag,
    MustExist,
    ReadFirst,
    Unconditional,
    WriteCondition,
    read_conditions,
    write_condition,
)
from lockservice.v1 import resource_pb2

# Sun, 06 Nov 1994 08:49:37 GMT, written with a fraction of a second.
MODIFIED = 784111777
CURRENT = resource_pb2.Resource(
    key="k",
    version=3,
    etag='"5.3"',
    mod_revision=9,
    update_time=Timestamp(seconds=MODIFIED, nanos=600_000_000),
)
NOW = MODIFIED + 3600.5
AT_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE_MODIFIED = "Sun, 06 Nov 1994 08:49:36 GMT"
AFTER_MODIFIED = "Sun, 06 Nov 1994 08:49:38 GMT"


def condition(headers: Mapping[str, str], method: str = "PUT") -> WriteCondition:
    return write_condition(Headers(headers), method, required=False)


def pinned(
    headers: Mapping[str, str], current: resource_pb2.Resource | None, method: str = "PUT"
) -> WriteCondition:
    read_first = condition(headers, method)
    assert isinstance(read_first, ReadFirst)
    return read_first.pin(current, NOW)


def rejected(call: object) -> tuple[str, str, Mapping[str, str]]:
    assert isinstance(call, RequestRejected)
    failure = call.failure
    return failure.code.name, failure.reason, failure.metadata


@pytest.mark.parametrize(
    ("headers", "method", "expected"),
    [
        ({}, "PUT", Unconditional()),
        ({"If-None-Match": "*"}, "PUT", CreateOnly()),
        ({"If-None-Match": " * "}, "PUT", CreateOnly()),
        ({"If-None-Match": "*", "If-Unmodified-Since": AT_MODIFIED}, "PUT", CreateOnly()),
        ({"If-Match": "*"}, "PUT", MustExist()),
        ({"If-Match": '"5.3"'}, "PUT", MatchEtag('"5.3"')),
        ({"If-Match": ' "5.3" '}, "DELETE", MatchEtag('"5.3"')),
        ({"If-Match": "*"}, "DELETE", MustExist()),
        # If-Unmodified-Since is ignored beside If-Match; If-Modified-Since on a write always.
        ({"If-Match": '"5.3"', "If-Unmodified-Since": BEFORE_MODIFIED}, "PUT", MatchEtag('"5.3"')),
        ({"If-Modified-Since": AFTER_MODIFIED}, "PUT", Unconditional()),
        ({"If-Unmodified-Since": "not a date"}, "PUT", Unconditional()),
    ],
)
def test_conditions_the_service_compares_atomically(
    headers: dict[str, str], method: str, expected: WriteCondition
) -> None:
    assert condition(headers, method) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Match": '"a", "5.3"'},
        {"If-Match": 'W/"5.3", "5.3"'},
        {"If-Unmodified-Since": AT_MODIFIED},
        {"If-Unmodified-Since": AFTER_MODIFIED},
        {"If-None-Match": '"a", W/"b"'},
        {"If-Match": '"5.3"', "If-None-Match": '"a"'},
        {"If-Match": "*", "If-None-Match": 'W/"5.2"'},
    ],
)
def test_a_list_or_a_date_is_evaluated_on_the_state_read_and_pins_the_write_to_it(
    headers: dict[str, str],
) -> None:
    """No lost update: the write still expects the exact etag that was read."""
    assert pinned(headers, CURRENT) == MatchEtag('"5.3"')
    assert pinned(headers, CURRENT, "DELETE") == MatchEtag('"5.3"')


@pytest.mark.parametrize(
    "headers",
    [{"If-Unmodified-Since": AT_MODIFIED}, {"If-None-Match": '"a", "b"'}, {"If-None-Match": '"5.3"'}],
)
def test_without_if_match_a_put_on_a_missing_key_is_pinned_to_its_absence(headers: dict[str, str]) -> None:
    read_first = condition(headers)
    assert isinstance(read_first, ReadFirst)
    assert read_first.may_create
    assert read_first.pin(None, NOW) == CreateOnly()
    for method, extra in (("DELETE", {}), ("PUT", {"If-Match": '"a", "b"'})):
        read_first = condition({**headers, **extra}, method)
        assert isinstance(read_first, ReadFirst)
        assert not read_first.may_create  # the read's RESOURCE_NOT_FOUND is the answer


@pytest.mark.parametrize(
    ("headers", "reason", "expected"),
    [
        ({"If-Match": '"a", "b"'}, "VERSION_MISMATCH", 'etag "a", "b"'),
        ({"If-Match": 'W/"5.3"'}, "VERSION_MISMATCH", 'etag W/"5.3"'),  # strong comparison
        ({"If-Match": 'W/"5.3", "x"'}, "VERSION_MISMATCH", 'etag W/"5.3", "x"'),
        ({"If-Unmodified-Since": BEFORE_MODIFIED}, "VERSION_MISMATCH", f"unmodified since {BEFORE_MODIFIED}"),
        ({"If-None-Match": '"a", W/"5.3"'}, "RESOURCE_EXISTS", 'none of "a", W/"5.3"'),  # weak comparison
        ({"If-None-Match": "*"}, "RESOURCE_EXISTS", "absent"),
        # If-Match decides first: the stale date beside a matching list is not evaluated.
        (
            {"If-Match": '"5.3", "b"', "If-Unmodified-Since": BEFORE_MODIFIED, "If-None-Match": '"5.3"'},
            "RESOURCE_EXISTS",
            'none of "5.3"',
        ),
    ],
)
def test_a_false_condition_on_a_write_is_a_conflict_with_the_current_state(
    headers: dict[str, str], reason: str, expected: str
) -> None:
    method = "DELETE" if headers.get("If-None-Match") == "*" else "PUT"
    with pytest.raises(RequestRejected) as refused:
        pinned(headers, CURRENT, method)
    failure = refused.value.failure
    assert failure.reason == reason
    assert failure.code.name == ("ALREADY_EXISTS" if reason == "RESOURCE_EXISTS" else "ABORTED")
    assert failure.metadata == {"key": "k", "current_version": "3"}
    assert failure.conflict is not None
    assert (failure.conflict.current_etag, failure.conflict.current_version) == ('"5.3"', 3)
    assert failure.conflict.expected == expected


@pytest.mark.parametrize(
    ("headers", "method", "field"),
    [
        ({"If-Match": "5.3"}, "PUT", "If-Match"),
        ({"If-Match": '"a" junk'}, "PUT", "If-Match"),
        ({"If-Match": '"a",, junk'}, "DELETE", "If-Match"),
        ({"If-Match": ""}, "PUT", "If-Match"),
        ({"If-Match": '"' + "x" * 300 + '"'}, "PUT", "If-Match"),
        ({"If-None-Match": "5.3"}, "PUT", "If-None-Match"),
        ({"If-None-Match": '*, "a"'}, "DELETE", "If-None-Match"),
        ({"If-None-Match": ""}, "GET", "If-None-Match"),
        ({"If-Match": "W/5.3"}, "GET", "If-Match"),
    ],
)
def test_malformed_entity_tags_are_400_naming_the_header(
    headers: dict[str, str], method: str, field: str
) -> None:
    with pytest.raises(RequestRejected) as refused:
        if method == "GET":
            read_conditions(Headers(headers)).not_modified(CURRENT, NOW)
        else:
            condition(headers, method)
    assert rejected(refused.value) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT", {"field": field})


def test_require_mode_refuses_only_unconditional_writes() -> None:
    for headers in ({}, {"If-Modified-Since": AT_MODIFIED}):
        with pytest.raises(RequestRejected) as refused:
            write_condition(Headers(headers), "DELETE", required=True)
        assert rejected(refused.value)[:2] == ("FAILED_PRECONDITION", "PRECONDITION_REQUIRED")
    assert write_condition(Headers({"If-Match": "*"}), "DELETE", required=True) == MustExist()
    unmodified = write_condition(Headers({"If-Unmodified-Since": AT_MODIFIED}), "DELETE", required=True)
    assert isinstance(unmodified, ReadFirst)


@pytest.mark.parametrize(
    ("headers", "not_modified"),
    [
        ({}, False),
        ({"If-None-Match": '"5.3"'}, True),
        ({"If-None-Match": 'W/"5.3"'}, True),
        ({"If-None-Match": '"1.1", "5.3"'}, True),
        ({"If-None-Match": "*"}, True),
        ({"If-None-Match": '"5.2"'}, False),
        ({"If-Match": '"5.3"'}, False),
        ({"If-Match": '"1.1", "5.3"'}, False),
        ({"If-Match": "*"}, False),
        # If-Modified-Since at one-second resolution: the fraction of the write does not count.
        ({"If-Modified-Since": AT_MODIFIED}, True),
        ({"If-Modified-Since": AFTER_MODIFIED}, True),
        ({"If-Modified-Since": BEFORE_MODIFIED}, False),
        ({"If-Modified-Since": "Sunday, 06-Nov-94 08:49:37 GMT"}, True),  # RFC 850, obsolete
        ({"If-Modified-Since": "Sun Nov  6 08:49:37 1994"}, True),  # asctime, obsolete
        ({"If-Modified-Since": "yesterday"}, False),  # invalid: ignored
        ({"If-Modified-Since": "Tue, 01 Jan 2999 00:00:00 GMT"}, False),  # later than now: invalid
        # If-None-Match present: If-Modified-Since is not evaluated.
        ({"If-None-Match": '"5.2"', "If-Modified-Since": AFTER_MODIFIED}, False),
        ({"If-Unmodified-Since": AT_MODIFIED}, False),
        ({"If-Unmodified-Since": "nonsense"}, False),
        ({"If-Match": '"5.3"', "If-Unmodified-Since": BEFORE_MODIFIED}, False),  # ignored beside If-Match
    ],
)
def test_read_preconditions(headers: dict[str, str], not_modified: bool) -> None:
    assert read_conditions(Headers(headers)).not_modified(CURRENT, NOW) is not_modified


def test_last_modified_is_compared_as_sent_never_later_than_now() -> None:
    """A representation stamped after the adapter's clock is compared at the clamped date."""
    future = resource_pb2.Resource(
        key="k", version=1, etag='"1.1"', update_time=Timestamp(seconds=MODIFIED + 10)
    )
    assert read_conditions(Headers({"If-Modified-Since": AT_MODIFIED})).not_modified(future, MODIFIED + 0.9)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"If-Match": '"5.2"'}, 'etag "5.2"'),
        ({"If-Match": 'W/"5.3"'}, 'etag W/"5.3"'),
        ({"If-Unmodified-Since": BEFORE_MODIFIED}, f"unmodified since {BEFORE_MODIFIED}"),
    ],
)
def test_a_read_with_a_false_precondition_is_the_version_mismatch_a_write_gets(
    headers: dict[str, str], expected: str
) -> None:
    with pytest.raises(RequestRejected) as refused:
        read_conditions(Headers(headers)).not_modified(CURRENT, NOW)
    failure = refused.value.failure
    assert (failure.code.name, failure.reason) == ("ABORTED", "VERSION_MISMATCH")
    assert failure.metadata == {"key": "k", "current_version": "3"}
    assert failure.conflict is not None
    assert (failure.conflict.current_etag, failure.conflict.current_version) == ('"5.3"', 3)
    assert failure.conflict.expected == expected
