"""Couriers' callbacks as they really arrive: five at once, late, out of order, forged, badly signed.

Dada's callbacks are signed with public values only, so the API believes
Dada's status query, not the callback; WeChat's come through message push,
signed and encrypted. Whatever arrives, an order moves forward only and each
status takes effect once.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chalicelib.orders.models import Order
from chalicelib.points import ledger
from tests.conftest import eventually
from tests.fulfillment_helpers import (
    accepted_and_packed,
    advance,
    dispatched,
    orders_configured,
    replay,
)
from tests.order_helpers import delivery, level, new_sku, new_store, order_status, remote_spot, shopper, stock
from tests.test_orders_api import invariants_hold, members, paid_and_waiting  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("stack")


def out_for_delivery(api, stack, members: list[str], courier: str) -> tuple[str, str, str]:
    """(order id, store, SKU) of a paid delivery order its store packed, with `courier` dispatched (2 in stock)."""
    lat, lng = remote_spot()
    store = new_store(lat, lng)
    sku = new_sku()
    stock(store, sku, 2)
    member_id, token = shopper(api)
    members.append(member_id)
    with orders_configured(delivery_couriers=[courier]):  # the courier is chosen as the dispatch is made
        order_id = paid_and_waiting(api, stack, token, delivery(lat, lng, (sku, 1)))
        accepted_and_packed(api, store, order_id)
        [sent] = dispatched(stack, order_id)
    assert sent["courier"] == courier
    return order_id, store, sku


def courier_status(order_id: str) -> str:
    return Order.get(order_id, consistent_read=True).courier.status


def timeline(order_id: str) -> list[str]:
    return [entry.status for entry in Order.get(order_id, consistent_read=True).timeline]


def dada_callback(ref: str, order_status: int, update_time: int | None = None) -> dict:
    """A callback as anyone can write one: Dada's signature needs no secret."""
    update_time = update_time or int(time.time())
    values = {"client_id": "dada-client", "order_id": ref, "update_time": update_time}
    signature = hashlib.md5("".join(sorted(str(v) for v in values.values())).encode()).hexdigest()
    return {**values, "order_status": order_status, "signature": signature}


def post_dada(api, body) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{api.base_url}/webhooks/courier/dada", data=data,
                         headers={"Content-Type": "application/json"}, timeout=30)


@pytest.mark.parametrize("courier", ["dada", "wechat"])
def test_the_delivered_callback_five_times_at_once_completes_the_order_once(api, stack, members, courier):
    order_id, store, sku = out_for_delivery(api, stack, members, courier)
    advance(stack, order_id, "picked_up")
    delivered = advance(stack, order_id, "delivered")["callback"]

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: replay(delivered), range(5)))
    assert [answer.status_code for answer in answers] == [200] * 5
    assert order_status(order_id) == "completed"
    assert timeline(order_id).count("completed") == 1
    assert level(store, sku)["onHand"] == 1 and level(store, sku)["reserved"] == 0
    member_id = Order.get(order_id).member_id
    assert ledger.find_transfer(member_id, f"order#{order_id}#earn") is not None


@pytest.mark.parametrize("courier", ["dada", "wechat"])
def test_a_late_status_after_delivery_changes_nothing(api, stack, members, courier):
    order_id, _, _ = out_for_delivery(api, stack, members, courier)
    accepted = advance(stack, order_id, "accepted")["callback"]
    picked_up = advance(stack, order_id, "picked_up")["callback"]
    advance(stack, order_id, "delivered")
    before = Order.get(order_id, consistent_read=True)

    for late in (picked_up, accepted):
        assert replay(late).status_code == 200  # the sender is told it arrived, so it stops sending
    after = Order.get(order_id, consistent_read=True)
    assert after.status == "completed" and after.courier.status == "delivered"
    assert len(after.timeline) == len(before.timeline)


def test_wechat_events_out_of_order_only_move_forward(api, stack, members):
    order_id, _, _ = out_for_delivery(api, stack, members, "wechat")
    accepted = advance(stack, order_id, "accepted", notify=False)["callback"]
    picked_up = advance(stack, order_id, "picked_up", notify=False)["callback"]

    assert replay(picked_up).status_code == 200
    assert courier_status(order_id) == "picked_up" and order_status(order_id) == "delivering"
    assert replay(accepted).status_code == 200  # older: recorded, not applied
    assert courier_status(order_id) == "picked_up" and order_status(order_id) == "delivering"


def test_a_forged_dada_callback_is_checked_against_dadas_status_query(api, stack, members):
    order_id, _, _ = out_for_delivery(api, stack, members, "dada")
    advance(stack, order_id, "accepted")
    ref = Order.get(order_id).courier.ref

    forged = post_dada(api, dada_callback(ref, order_status=4))  # "delivered", says the forger
    assert forged.status_code == 200
    assert order_status(order_id) == "ready" and courier_status(order_id) == "accepted"  # Dada says otherwise

    unknown = post_dada(api, dada_callback(f"{order_id}-9", order_status=4))
    assert unknown.status_code == 400
    tampered = {**dada_callback(ref, order_status=4), "signature": "0" * 32}
    assert post_dada(api, tampered).status_code == 400
    assert post_dada(api, b"{not json").status_code == 400
    assert post_dada(api, {"order_id": ref}).status_code == 400
    assert order_status(order_id) == "ready"
    assert requests.post(f"{api.base_url}/webhooks/courier/sf", data=b"{}", timeout=10).status_code == 404


def test_message_push_with_a_bad_signature_or_stale_timestamp_is_refused(api, stack, members):
    order_id, _, _ = out_for_delivery(api, stack, members, "wechat")
    delivered = advance(stack, order_id, "delivered", notify=False)["callback"]
    query = dict(delivered["query"])

    for bad in ({**query, "msg_signature": "0" * 40}, {**query, "signature": "0" * 40},
                {**query, "timestamp": str(int(time.time()) - 3600)}):
        refused = replay({**delivered, "query": bad})
        assert refused.status_code == 403
    tampered = {**delivered, "body": delivered["body"].replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA")}
    assert replay(tampered).status_code == 403
    assert order_status(order_id) == "ready"

    assert replay(delivered).status_code == 200  # the genuine one, as sent
    eventually(lambda: order_status(order_id) == "completed", what="the genuine event to apply")


def test_the_message_push_url_is_verified_with_the_token(api):
    from chalicelib.config import secret

    timestamp, nonce = str(int(time.time())), "n0nce"
    signature = hashlib.sha1("".join(sorted([secret("wechat_push_token"), timestamp, nonce])).encode()).hexdigest()
    url = f"{api.base_url}/webhooks/wechat"
    good = requests.get(url, params={"signature": signature, "timestamp": timestamp, "nonce": nonce,
                                     "echostr": "echo-123"}, timeout=10)
    assert good.status_code == 200 and good.text == "echo-123"
    bad = requests.get(url, params={"signature": "0" * 40, "timestamp": timestamp, "nonce": nonce,
                                    "echostr": "echo-123"}, timeout=10)
    assert bad.status_code == 403 and "echo-123" not in bad.text
