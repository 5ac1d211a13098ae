"""The phone lookup key rotates: phones bound under the previous key keep their members."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from pynamodb.exceptions import DoesNotExist

from chalicelib.config import reset_settings
from chalicelib.members import service as members
from chalicelib.members.models import Identity
from tests import whole_table
from tests.conftest import unique

NEW_KEY = "rotated-lookup-hash-key-for-tests"


def _phone(prefix: str) -> str:
    return prefix + unique("")[-8:].translate(str.maketrans("abcdef", "123456"))


@pytest.fixture
def lookup_keys(stack, monkeypatch) -> Iterator[Callable[[str, str | None], None]]:
    """Set the current and previous lookup keys; afterwards the stack's key is current again, identities re-keyed back."""
    original = os.environ["SIYU_LOOKUP_HASH_KEY"]

    def use(current: str, previous: str | None) -> None:
        monkeypatch.setenv("SIYU_LOOKUP_HASH_KEY", current)
        if previous:
            monkeypatch.setenv("SIYU_LOOKUP_HASH_KEY_PREVIOUS", previous)
        else:
            monkeypatch.delenv("SIYU_LOOKUP_HASH_KEY_PREVIOUS", raising=False)
        reset_settings()

    yield use
    use(original, NEW_KEY)
    whole_table.run("identity-rekey")["moved"]
    monkeypatch.undo()
    reset_settings()


def _holder_under_the_current_key(phone: str) -> str | None:
    try:
        return Identity.get(members.phone_identity_key(phone), consistent_read=True).member_id
    except DoesNotExist:
        return None


def _bind(api, token: str, phone: str):
    return api.post("/members/me/phone", token, json={"code": f"phone:{phone}"})


def test_a_rotated_lookup_key_keeps_phones_with_their_members_and_rekeying_moves_them(api, admin_token, lookup_keys):
    old_key = os.environ["SIYU_LOOKUP_HASH_KEY"]
    owner, other, buyer = (api.login(unique(name)) for name in ("owner", "other", "buyer"))
    phone, pos_phone = _phone("139"), _phone("137")
    assert _bind(api, owner, phone).status_code == 200
    imported = api.post("/admin/members/offline", admin_token, json={"phone": pos_phone, "points": 30})
    assert imported.status_code == 201, imported.text

    lookup_keys(NEW_KEY, old_key)
    taken = _bind(api, other, phone)
    assert taken.status_code == 409 and taken.json()["code"] == "PHONE_IN_USE"
    again = api.post("/admin/members/offline", admin_token, json={"phone": phone, "points": 1})
    assert again.status_code == 409 and again.json()["code"] == "PHONE_IN_USE"
    merged = _bind(api, buyer, pos_phone)
    assert merged.status_code == 200, merged.text
    assert merged.json()["phone"] == pos_phone and merged.json()["points"]["available"] == 30

    owner_id = api.get("/members/me", owner).json()["memberId"]
    assert _holder_under_the_current_key(pos_phone) == merged.json()["memberId"]  # the merge moved it
    assert _holder_under_the_current_key(phone) is None
    assert whole_table.run("identity-rekey")["moved"] >= 1
    assert _holder_under_the_current_key(phone) == owner_id
    assert whole_table.run("identity-rekey")["moved"] == 0

    lookup_keys(NEW_KEY, None)
    taken = _bind(api, other, phone)
    assert taken.status_code == 409 and taken.json()["code"] == "PHONE_IN_USE"
    assert _bind(api, owner, phone).status_code == 200
    assert api.get("/members/me", other).json()["phoneBound"] is False


def test_a_phone_identity_from_before_key_ids_still_holds_its_phone_until_rekeyed(api, stack):
    from chalicelib import clock
    from chalicelib.members.lookup import current_key

    owner, other = api.login(unique("owner")), api.login(unique("other"))
    owner_id = api.get("/members/me", owner).json()["memberId"]
    phone = _phone("136")
    assert _bind(api, owner, phone).status_code == 200
    Identity(members.phone_identity_key(phone)).delete()
    Identity(current_key().unversioned_identity_key(phone), member_id=owner_id, created_at=clock.now()).save()

    taken = _bind(api, other, phone)
    assert taken.status_code == 409 and taken.json()["code"] == "PHONE_IN_USE"
    assert whole_table.run("identity-rekey")["moved"] >= 1
    assert _holder_under_the_current_key(phone) == owner_id
