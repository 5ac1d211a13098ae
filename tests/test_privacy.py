"""Privacy: a deleted member leaves no personal data in any table, and nothing logged holds a secret.

The first tests delete members with a full history (phone, profile, guide,
orders with an address, a booking with a note) and then scan every table.
The last one, run after every other test of the run, reads every line the
application logged meanwhile and every table for what WeChat gave out
(openids, unionids, session keys, access tokens, phone numbers) and for the
API's own tokens.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator

import pytest

from chalicelib import clock, db
from tests.appointment_helpers import at, future_day, make_store
from tests.conftest import unique
from tests.coupon_helpers import guide_token
from tests.fulfillment_helpers import collected
from tests.order_helpers import delivery, new_sku, new_store, pickup, remote_spot, stock
from tests.test_orders_api import paid_and_waiting

pytestmark = pytest.mark.usefixtures("stack")

# Mainland mobile numbers as written, and the API's signed tokens (JWTs).
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
API_TOKEN = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")


def every_item() -> Iterator[tuple[str, str]]:
    """(table, item as JSON) of every item of every table of the stack."""
    client = db.connection().client
    for model in db.all_models():
        model._get_connection()
        table, start = model.Meta.table_name, None
        while True:
            page = client.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            for item in page.get("Items", []):
                yield table, json.dumps(item, ensure_ascii=False)
            start = page.get("LastEvaluatedKey")
            if not start:
                break


def holding(*needles: str) -> list[tuple[str, str]]:
    return [(table, needle) for table, text in every_item() for needle in needles if needle in text]


def new_phone() -> str:
    return f"139{random.randrange(10 ** 8):08d}"


def member_with_a_history(api, stack) -> dict:
    """A member with a phone, a profile, a guide, a completed order, an unpaid delivery order and a booking."""
    spot = remote_spot()
    store = new_store(*spot)
    sku = new_sku()
    stock(store, sku, 5)
    guide_id, _ = guide_token(api, store)
    person = {"openid": unique("private"), "phone": new_phone(), "nickname": unique("昵称"),
              "address": unique("上海市隐私路"), "name": unique("收件人")}
    login = api.post("/auth/login", json={"code": f"dev:{person['openid']}", "scene": f"g={guide_id}"}).json()
    token = person["token"] = login["token"]
    assert api.put("/members/me/profile", token, json={"nickname": person["nickname"], "city": "上海"}).status_code == 200
    assert api.post("/members/me/phone", token, json={"code": f"phone:{person['phone']}"}).status_code == 200
    completed = paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))
    collected(api, store, completed)
    body = delivery(*spot, (sku, 1))
    body["fulfillment"]["address"].update(name=person["name"], phone=person["phone"], text=person["address"])
    unpaid = api.post("/orders", token, json=body)
    assert unpaid.status_code == 200, unpaid.text
    person["unpaid"] = unpaid.json()["orderId"]
    service_store = make_store()
    start = clock.iso(at(future_day(), "10:00"))
    booked = api.post("/appointments", token, json={"storeId": service_store, "serviceId": "repair", "start": start,
                                                     "note": f"请打 {person['phone']}"})
    assert booked.status_code in (200, 201), booked.text
    return person


def test_a_deleted_member_leaves_no_phone_openid_name_or_address_in_any_table(api, stack):
    person = member_with_a_history(api, stack)
    personal = (person["openid"], f"u-{person['openid']}", person["phone"], person["nickname"], person["address"],
                person["name"])
    assert holding(*personal)  # the scan finds them while the member exists

    assert api.delete("/members/me", person["token"]).status_code == 204
    assert holding(*personal) == []
    assert api.get("/members/me", person["token"]).status_code == 401
    from chalicelib.orders.service import get_order

    assert get_order(person["unpaid"]).status == "cancelled"  # the unpaid order was closed, not left to be paid
    again = api.post("/auth/login", json={"code": f"dev:{person['openid']}"}).json()  # a new member, from nothing
    assert again["isNew"] is True and again["member"]["phoneBound"] is False


def test_an_account_with_an_order_on_its_way_is_not_deleted(api, stack):
    spot = remote_spot()
    store = new_store(*spot)
    sku = new_sku()
    stock(store, sku, 2)
    openid = unique("busy")
    token = api.login(openid)
    paid_and_waiting(api, stack, token, pickup(store, (sku, 1)))

    refused = api.delete("/members/me", token)
    assert refused.status_code == 409 and refused.json()["code"] == "ORDERS_IN_PROGRESS"
    assert api.get("/members/me", token).status_code == 200
    assert holding(openid)


@pytest.mark.after_everything
def test_nothing_logged_during_the_run_holds_a_phone_an_openid_or_a_token(stack, suite_log_lines):
    issued = set().union(*stack.sandbox.wechat.issued.values())
    assert issued and suite_log_lines  # the run logged members in and wrote logs
    leaks = [line for line in suite_log_lines
             if PHONE.search(line) or API_TOKEN.search(line) or any(value in line for value in issued)]
    assert leaks == []


@pytest.mark.after_everything
def test_no_table_holds_an_api_token_or_a_wechat_session_key(stack):
    issued = stack.sandbox.wechat.issued
    session_keys, access_tokens = issued["session_key"], issued["access_token"]
    leaked = []
    for table, text in every_item():
        if API_TOKEN.search(text):
            leaked.append((table, "an API token"))
        leaked += [(table, "a session key") for value in session_keys if value in text]
        # Access tokens are shared between containers through their own cache table, and only there.
        if not table.endswith("wechat-tokens"):
            leaked += [(table, "an access token") for value in access_tokens if value in text]
    assert leaked == []
