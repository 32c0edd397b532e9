from __future__ import annotations

import pytest

from lockservice.core import requests as rq
from lockservice.core.idempotency import fingerprint, request_key
from lockservice.core.limits import Limits
from lockservice.core.ownership import owner_tag
from lockservice.core.validation import check_request_id
from lockservice.errors import InvalidArgument
from lockservice.model import Compare, ExpectValue, PutOperation


def test_fingerprint_ignores_request_id_only() -> None:
    a = rq.CreateResource(key="k", value=b"v", request_id="one")
    b = rq.CreateResource(key="k", value=b"v", request_id="two")
    assert fingerprint("CreateResource", a) == fingerprint("CreateResource", b)
    assert fingerprint("CreateResource", a) != fingerprint(
        "CreateResource", rq.CreateResource(key="k", value=b"w", request_id="one")
    )
    assert fingerprint("CreateResource", a) != fingerprint("UpdateResource", a)


def test_fingerprint_tells_fields_apart() -> None:
    # The same bytes moved from one field to another must not collide.
    a = rq.CreateResource(key="k", value=b"", content_type="ab", request_id="r")
    b = rq.CreateResource(key="k", value=b"ab", content_type="", request_id="r")
    assert fingerprint("CreateResource", a) != fingerprint("CreateResource", b)


def test_fingerprint_covers_nested_transaction_parts() -> None:
    compares = (Compare("k", ExpectValue(b"1")),)
    a = rq.Transact(compares=compares, operations=(PutOperation("k", b"2"),), request_id="r")
    b = rq.Transact(compares=compares, operations=(PutOperation("k", b"3"),), request_id="r")
    assert fingerprint("Transact", a) != fingerprint("Transact", b)


def test_no_request_id_needs_no_fingerprint() -> None:
    # Nothing is ever compared with it: the digest of a large value is not worth its cost.
    assert fingerprint("CreateResource", rq.CreateResource(key="k", value=b"v" * 1024)) == ""


def test_a_request_key_is_the_id_within_the_callers_identity() -> None:
    assert request_key("", "alice") == ""
    assert request_key("r", None) == "r"  # no authentication: ids as they are
    alice, bob = request_key("r", "alice"), request_key("r", "bob")
    assert alice != bob
    assert alice == f"{owner_tag('alice')} r"


def test_no_request_id_can_name_another_identitys_answer() -> None:
    """The key puts a space between tag and id, and a request_id never holds a space: no id,
    of another identity or of a caller without one, makes the same key."""
    limits = Limits()
    key = request_key("r", "alice")
    with pytest.raises(InvalidArgument):
        check_request_id(key, limits)
    assert request_key(key, None) == key  # the collision that refusing such an id prevents
