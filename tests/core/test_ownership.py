"""Lease ownership bound into lease ids: a pure check, for every identity, never forgeable by
choosing an id."""

from __future__ import annotations

import re

import pytest

from lockservice.core.ownership import (
    check_lease_owner,
    mint_lease_id,
    mint_waiter_id,
    owner_tag,
    owns_lease,
    waiter_owner_tag,
)
from lockservice.core.validation import check_lease_id
from lockservice.errors import PermissionDenied


def test_without_authentication_ids_are_unchanged_and_everything_passes() -> None:
    lease_id = mint_lease_id(owner_tag(None))
    assert re.fullmatch(r"[0-9a-f]{32}", lease_id)
    assert owns_lease(lease_id, None)
    check_lease_owner("f" * 32, None)


def test_an_owned_lease_id_carries_its_owners_tag() -> None:
    lease_id = mint_lease_id(owner_tag("alice"))
    assert re.fullmatch(r"[0-9a-f]{48}", lease_id)
    check_lease_id(lease_id)
    assert lease_id.startswith(owner_tag("alice"))
    assert owns_lease(lease_id, "alice")
    assert not owns_lease(lease_id, "bob")
    assert mint_lease_id(owner_tag("alice")) != lease_id  # 128 random bits each


def test_a_lease_granted_before_authentication_belongs_to_no_one() -> None:
    assert not owns_lease(mint_lease_id(""), "alice")


def test_check_names_the_lease_and_not_its_owner() -> None:
    lease_id = mint_lease_id(owner_tag("alice"))
    with pytest.raises(PermissionDenied) as caught:
        check_lease_owner(lease_id, "bob", field="fence")
    assert caught.value.metadata == {"field": "fence", "lease_id": lease_id}
    assert "alice" not in caught.value.message


def test_a_waiter_id_hands_its_owner_to_the_lease_made_at_the_hand_over() -> None:
    assert waiter_owner_tag(mint_waiter_id("bob")) == owner_tag("bob")
    assert waiter_owner_tag(mint_waiter_id(None)) == ""
    assert len(mint_waiter_id(None)) == 24
