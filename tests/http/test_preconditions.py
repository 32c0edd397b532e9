"""If-Match / If-None-Match as write conditions, and read preconditions (304, 409)."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from lockservice.http.failures import RequestRejected
from lockservice.http.preconditions import (
    CreateOnly,
    MatchEtag,
    MustExist,
    Unconditional,
    WriteCondition,
    check_read_preconditions,
    write_condition,
)
from lockservice.v1 import resource_pb2

CURRENT = resource_pb2.Resource(key="k", version=3, etag='"5.3"', mod_revision=9)


@pytest.mark.parametrize(
    ("headers", "method", "expected"),
    [
        ({}, "PUT", Unconditional()),
        ({"If-None-Match": "*"}, "PUT", CreateOnly()),
        ({"If-None-Match": " * "}, "PUT", CreateOnly()),
        ({"If-Match": "*"}, "PUT", MustExist()),
        ({"If-Match": '"5.3"'}, "PUT", MatchEtag('"5.3"')),
        ({"If-Match": ' "5.3" '}, "DELETE", MatchEtag('"5.3"')),
        ({"If-Match": "*"}, "DELETE", MustExist()),
    ],
)
def test_write_conditions(headers: dict[str, str], method: str, expected: WriteCondition) -> None:
    assert write_condition(Headers(headers), method, required=False) == expected


@pytest.mark.parametrize(
    ("headers", "method", "field"),
    [
        ({"If-Match": "5.3"}, "PUT", "If-Match"),
        ({"If-Match": '"a", "b"'}, "PUT", "If-Match"),
        ({"If-Match": 'W/"5.3"'}, "PUT", "If-Match"),
        ({"If-Match": '"a" junk'}, "PUT", "If-Match"),
        ({"If-Match": ""}, "PUT", "If-Match"),
        ({"If-None-Match": '"5.3"'}, "PUT", "If-None-Match"),
        ({"If-None-Match": "*"}, "DELETE", "If-None-Match"),
        ({"If-Match": "*", "If-None-Match": "*"}, "PUT", "If-None-Match"),
    ],
)
def test_malformed_conditions_are_400_naming_the_header(
    headers: dict[str, str], method: str, field: str
) -> None:
    with pytest.raises(RequestRejected) as rejected:
        write_condition(Headers(headers), method, required=False)
    failure = rejected.value.failure
    assert (failure.code.name, failure.reason, failure.metadata) == (
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        {"field": field},
    )


def test_require_mode_refuses_only_unconditional_writes() -> None:
    with pytest.raises(RequestRejected) as rejected:
        write_condition(Headers({}), "DELETE", required=True)
    assert rejected.value.failure.reason == "PRECONDITION_REQUIRED"
    assert rejected.value.failure.code.name == "FAILED_PRECONDITION"
    assert write_condition(Headers({"If-Match": "*"}), "DELETE", required=True) == MustExist()


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
    ],
)
def test_read_preconditions(headers: dict[str, str], not_modified: bool) -> None:
    assert check_read_preconditions(Headers(headers), CURRENT) is not_modified


def test_a_read_with_a_stale_if_match_is_the_version_mismatch_a_write_gets() -> None:
    with pytest.raises(RequestRejected) as rejected:
        check_read_preconditions(Headers({"If-Match": '"5.2"'}), CURRENT)
    failure = rejected.value.failure
    assert (failure.code.name, failure.reason) == ("ABORTED", "VERSION_MISMATCH")
    assert failure.metadata == {"key": "k", "current_version": "3"}
    assert failure.conflict is not None
    assert (failure.conflict.current_etag, failure.conflict.current_version) == ('"5.3"', 3)
    assert failure.conflict.expected == 'etag "5.2"'
    with pytest.raises(RequestRejected):
        check_read_preconditions(Headers({"If-Match": 'W/"5.3"'}), CURRENT)  # strong comparison
