from __future__ import annotations

from lockservice.core import requests as rq
from lockservice.core.idempotency import fingerprint
from lockservice.model import Compare, ExpectValue, PutOperation


def test_fingerprint_ignores_request_id_only() -> None:
    a = rq.CreateResource(key="k", value=b"v", request_id="one")
    b = rq.CreateResource(key="k", value=b"v", request_id="two")
    assert fingerprint("CreateResource", a) == fingerprint("CreateResource", b)
    assert fingerprint("CreateResource", a) != fingerprint(
        "CreateResource", rq.CreateResource(key="k", value=b"w")
    )
    assert fingerprint("CreateResource", a) != fingerprint("UpdateResource", a)


def test_fingerprint_tells_fields_apart() -> None:
    # The same bytes moved from one field to another must not collide.
    a = rq.CreateResource(key="k", value=b"", content_type="ab")
    b = rq.CreateResource(key="k", value=b"ab", content_type="")
    assert fingerprint("CreateResource", a) != fingerprint("CreateResource", b)


def test_fingerprint_covers_nested_transaction_parts() -> None:
    a = rq.Transact(compares=(Compare("k", ExpectValue(b"1")),), operations=(PutOperation("k", b"2"),))
    b = rq.Transact(compares=(Compare("k", ExpectValue(b"1")),), operations=(PutOperation("k", b"3"),))
    assert fingerprint("Transact", a) != fingerprint("Transact", b)
